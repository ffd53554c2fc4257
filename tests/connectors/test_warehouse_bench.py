"""The warehouse benchmark harness at a tiny size: it runs and reports (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.harness.servers import BenchRedis
from bench.scenarios import warehouse
from stocksync.store.stock_changes import STOCK_ROWS_PER_CALL


def test_generate_writes_a_snapshot_with_one_row_per_position(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    warehouse.generate(path, 250)
    lines = path.read_text().splitlines()
    assert lines[0] == "sku,location_id,on_hand,as_of"
    assert len(lines) == 251
    assert len({tuple(line.split(",")[:2]) for line in lines[1:]}) == 250


@pytest.mark.slow
def test_warehouse_bench_imports_a_tiny_snapshot_and_reports_a_row(tmp_path: Path) -> None:
    with BenchRedis("no", tmp_path) as redis:
        [row] = warehouse.run(redis, 300, tmp_path / "work")
    assert row.extra["rows"] == row.extra["applied"] == 300
    assert row.errors == 0
    assert row.baseline_ops_s is not None
    assert isinstance(row.extra["peak_rss_mb"], float)
    assert row.extra["server_cpu_us_per_row"] > 0
    assert row.concurrency == f"4x{STOCK_ROWS_PER_CALL}"
    assert "300 rows" in warehouse.notes([row])[0]
