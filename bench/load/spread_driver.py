"""Drives the spread load: availability reads, reserve, confirm, fulfill and release over many
positions.

A fixed number of closed-loop shoppers (:mod:`bench.load.spread_gen`) split over a few generator
processes drive one system at a time; latencies are gathered per operation. The generators
share the 2 cores with the server, so their CPU is measured beside it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.harness.cpu import CpuSample, CpuWindow, no_pids, wait_idle
from bench.harness.servers import HOST
from bench.harness.stats import Latency
from bench.load.spread_gen import OPERATIONS, SpreadResult, SpreadSpec, child_main

START_DELAY_S = 2.0  # for the generator processes to start and connect
SETTLE_TIMEOUT_S = 180.0  # for a server's start-up work (stocksync's audit) to finish


@dataclass(frozen=True)
class Target:
    """A running system and the processes whose CPU is its own."""

    name: str
    fsync: str
    workers: int
    port: int
    key: str
    api_pids: Callable[[], list[int]]
    store_pids: Callable[[], list[int]]
    worker_pids: Callable[[], list[int]] = no_pids  # serve's workers process


@dataclass(frozen=True)
class SpreadRun:
    seconds: float
    latencies: dict[str, Latency]
    counts: dict[str, int]
    short: int
    errors: int
    error_samples: list[str]
    cpu: CpuSample
    settle_s: float  # waited for the server to be idle before the run

    @property
    def ops_s(self) -> float:
        return sum(self.counts.values()) / self.seconds

    def all_ops(self) -> Latency:
        return self.latencies["all"]


def drive(
    target: Target,
    skus: int,
    locations: int,
    concurrency: int,
    procs: int,
    seconds: float,
    warmup_s: float,
    tag: str,
) -> SpreadRun:
    """Once ``target`` is idle, run the shoppers against it for ``warmup_s`` + ``seconds``."""
    settle_s = wait_idle(lambda: target.api_pids() + target.worker_pids(), SETTLE_TIMEOUT_S)
    start_at = time.monotonic() + START_DELAY_S
    specs = [
        SpreadSpec(
            index=i,
            host=HOST,
            port=target.port,
            key=target.key,
            skus=skus,
            locations=locations,
            connections=concurrency // procs + (1 if i < concurrency % procs else 0),
            start_at=start_at,
            warmup_s=warmup_s,
            duration_s=seconds,
            tag=tag,
        )
        for i in range(procs)
    ]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(procs) as pool:
        pending = pool.map_async(child_main, specs)
        time.sleep(max(0.0, start_at + warmup_s - time.monotonic()))  # until the window opens
        groups = {"api": target.api_pids, "workers": target.worker_pids}
        window = CpuWindow({**groups, "redis": target.store_pids}).start()
        results: list[SpreadResult] = pending.get(timeout=START_DELAY_S + warmup_s + seconds + 60)
        cpu = window.stop(sum(r.cpu_seconds for r in results))
    samples = {op: [x for r in results for x in r.latencies.get(op, [])] for op in OPERATIONS}
    latencies = {op: Latency.of_seconds(v) for op, v in samples.items()}
    latencies["all"] = Latency.of_seconds([x for v in samples.values() for x in v])
    return SpreadRun(
        seconds=seconds,
        latencies=latencies,
        counts={op: len(v) for op, v in samples.items()},
        short=sum(r.short for r in results),
        errors=sum(r.errors for r in results),
        error_samples=[e for r in results for e in r.error_samples][:5],
        cpu=cpu,
        settle_s=round(settle_s, 1),
    )
