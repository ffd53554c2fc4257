"""Smoke run of the ``pools`` bench section at a tiny size: its rows exist, compare the pool
path with its same-run baselines, and every reservation it made was held (no timing asserted)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.harness.config import QUICK
from bench.scenarios import pools


def test_pools_section_compares_pool_reserves_and_batch_reads_with_baselines(
    tmp_path: Path,
) -> None:
    profile = dataclasses.replace(QUICK, cluster_reservations=400, cluster_concurrency=8)
    rows = pools.run(profile, tmp_path, lambda _: None)
    by_name = {row.scenario: row for row in rows}
    pool = by_name["store.reserve, pool line (3 locations, priority)"]
    location = by_name["store.reserve, location line (baseline)"]
    assert pool.baseline_ops_s == location.ops_s
    assert pool.extra["reservations"] == location.extra["reservations"] == 4 * 200  # rounds
    assert pool.errors == 0
    batch = next(row for row in rows if "batch call" in row.scenario)
    assert batch.baseline == "200 single reads"
    assert batch.baseline_ops_s
