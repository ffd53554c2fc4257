"""The spread section's rows, built from a run's figures without starting anything."""

from __future__ import annotations

from bench.harness.cpu import CpuSample
from bench.harness.stats import Latency
from bench.load.spread_driver import SpreadRun, Target
from bench.load.spread_gen import OPERATIONS
from bench.scenarios.spread import compare, rows


def run(reserve_ms: tuple[float, float], fulfil_ms: tuple[float, float]) -> SpreadRun:
    latencies = {op: Latency(10, 40.0, 60.0, 80.0, 90.0) for op in (*OPERATIONS, "all")}
    latencies["reserve"] = Latency(10, reserve_ms[0], 0.0, reserve_ms[1], 0.0)
    latencies["fulfill"] = Latency(10, fulfil_ms[0], 0.0, fulfil_ms[1], 0.0)
    counts = dict.fromkeys(OPERATIONS, 10)
    return SpreadRun(2.0, latencies, counts, 0, 0, [], CpuSample(), 0.0)


def target(name: str) -> Target:
    return Target(name, "always", 2, 1, "key", list, list)


def test_spread_rows_end_with_fulfil_latency_as_ratios_to_reserve() -> None:
    ours = rows(target("stocksync"), run((50.0, 100.0), (90.0, 210.0)), 64)
    ratio = ours[-1]
    assert ratio.scenario == "spread: stocksync, fulfill latency ÷ reserve"
    assert (ratio.extra["fulfill_p50_ratio"], ratio.extra["fulfill_p99_ratio"]) == (1.8, 2.1)
    assert ratio.passed is False  # p99 over 2x
    assert "p50 1.80x, p99 2.10x" in ratio.target
    within = rows(target("stocksync"), run((50.0, 100.0), (100.0, 200.0)), 64)[-1]
    assert within.passed is True


def test_spread_compare_keeps_the_ratio_row_on_its_own_baseline() -> None:
    ours = rows(target("stocksync"), run((50.0, 100.0), (90.0, 210.0)), 64)
    peer = rows(target("row-lock peer"), run((50.0, 100.0), (50.0, 100.0)), 64)
    compare(ours, peer)
    assert ours[0].baseline == "row-lock peer"
    assert (ours[-1].baseline, ours[-1].ratio) == ("reserve latency", None)
    assert peer[-1].passed is None  # the target is ours only
