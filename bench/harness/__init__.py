"""Shared machinery of the benchmarks: run profiles, servers, PostgreSQL, CPU accounting,
statistics, seeding, samplers and probes, and the result table."""
