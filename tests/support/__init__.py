"""Helpers shared between test modules: plain modules, no tests and no fixtures.

Test modules and conftest files import from here, never from each other.
"""
