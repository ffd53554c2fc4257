"""The benchmark figures of issue 18 that are not rows elsewhere: store.reserve against INCR with
Redis µs per reservation, the pick list's longest script, CPU µs per operation and the targets
table. Tiny sizes on a real Redis; no timing is asserted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import redis

from bench.harness.config import QUICK
from bench.harness.report import Row, render_table
from bench.harness.servers import BenchRedis
from bench.harness.targets import FIGURES, render_targets, targets
from bench.scenarios import ceiling_picklist, ceiling_reserve

pytestmark = pytest.mark.slow


def test_ceiling_reserve_reports_reservations_and_redis_usec_per_reservation(
    tmp_path: Path,
) -> None:
    profile = dataclasses.replace(
        QUICK, reserve_concurrency=4, script_rounds=1, script_slice_s=0.1, script_warmup_s=0.05
    )
    with BenchRedis("everysec", tmp_path) as redis:
        incr, reserve = ceiling_reserve.run(redis, profile)
    assert incr.ops_s > 0
    assert reserve.ops_s > 0
    assert reserve.baseline == "INCR"
    assert reserve.extra["script_commands"] == ["fcall"]  # one batch FCALL per group commit
    reservations = reserve.extra["reservations"]
    assert isinstance(reservations, int)
    assert reservations > 0
    usec = reserve.extra["redis_usec_per_reservation"]
    assert isinstance(usec, float)
    assert usec > 0


def test_redis_cost_counts_function_calls_and_divides_by_reservations() -> None:
    # Once batched through a function library: 10 FCALLs carried 400 reservations; the
    # commands inside them (HSET here) are already in the FCALL's time, and INCR is the baseline.
    stats: dict[str, object] = {
        "cmdstat_fcall": {"calls": 10, "usec": 2000, "usec_per_call": 200.0},
        "cmdstat_hset": {"calls": 400, "usec": 800, "usec_per_call": 2.0},
        "cmdstat_incrby": {"calls": 900, "usec": 900, "usec_per_call": 1.0},
    }
    cost = ceiling_reserve.redis_cost(stats, 400)
    assert cost["redis_usec_per_reservation"] == 5.0
    assert cost["script_usec_per_call"] == 200.0
    assert cost["reservations_per_script_call"] == 40.0
    assert cost["script_commands"] == ["fcall"]


def test_pick_list_reports_its_longest_script_and_restores_the_slowlog(tmp_path: Path) -> None:
    profile = dataclasses.replace(QUICK, picklist_carts=60)
    with BenchRedis("everysec", tmp_path) as server:
        row = ceiling_picklist.run(server, profile)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            settings = client.config_get("slowlog-log-slower-than")
        finally:
            client.close()
    assert row.extra["carts"] == 60
    longest = row.extra["longest_us"]
    assert isinstance(longest, dict)
    assert set(longest) == {"staff", "held"}
    assert all(v > 0 for v in longest.values())
    assert row.p99_ms == longest["staff"] / 1000  # the pick list; the held listing beside it
    assert settings["slowlog-log-slower-than"] != "0"


def test_cpu_us_per_operation_sums_the_system_roles_only() -> None:
    row = Row(
        section="http",
        scenario="HTTP POST /v1/reservations",
        fsync="always",
        workers=2,
        concurrency="64",
        ops_s=1000.0,
        p50_ms=1.0,
        p99_ms=2.0,
        cpu={"api": 60.0, "workers": 10.0, "redis": 30.0, "load": 50.0, "other": 20.0},
    )
    assert row.cpu_us_op == pytest.approx(1000.0)  # one core's worth over 1,000 ops/s
    assert "1,000" in render_table([row])
    script = dataclasses.replace(row, section="ceiling", cpu={"redis": 30.0, "load": 90.0})
    assert script.cpu_us_op is None


def test_targets_table_has_every_figure_and_shows_unmeasured_ones_as_dashes() -> None:
    reserve = Row(
        section="http",
        scenario="HTTP POST /v1/reservations",
        fsync="always",
        workers=2,
        concurrency="64",
        ops_s=900.0,
        p50_ms=1.0,
        p99_ms=2.0,
        baseline="GET /healthz",
        baseline_ops_s=1000.0,
        cpu={"api": 90.0, "workers": 0.0, "redis": 0.0},
    )
    entries = targets([reserve])
    assert [e["figure"] for e in entries] == [f.name for f in FIGURES]
    by_name = {e["figure"]: e for e in entries}
    healthz = by_name["`POST /v1/reservations` ÷ `GET /healthz`, same server"]
    assert (healthz["this run"], healthz["met"]) == ("W=2 0.90", "yes")
    assert by_name["Redis bytes per position at 1M"]["this run"] == "-"
    table = render_targets(entries)
    assert table.count("\n") == len(FIGURES) + 1
