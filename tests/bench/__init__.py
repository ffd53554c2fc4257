"""Smoke runs of the benchmark scenarios at tiny sizes (no timing asserted)."""
