"""(c) Open-loop latency at a fixed offered rate, spread over several generator processes.

The processes share one start time and interleave their schedules; their latencies (measured
from each request's due time, see :mod:`bench.loadgen`) are merged before taking percentiles.
The generators run on the same 2 cores as the server, so their CPU is reported beside it.
"""

from __future__ import annotations

import itertools
import multiprocessing
import queue
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue

from bench.harness.config import HOT_LOCATION, HOT_SKU, Profile
from bench.harness.cpu import CpuSample, CpuWindow
from bench.harness.report import Row
from bench.harness.servers import HOST, ApiServer, BenchRedis
from bench.harness.stats import Latency
from bench.loadgen import GenResult, GenSpec, child_main

TARGET_P99_MS = 10.0
READY_TIMEOUT_S = 60.0
GRACE_S = 5.0
_runs = itertools.count()


def run(
    server: ApiServer, redis: BenchRedis, profile: Profile, rate: int, client: str, procs: int
) -> Row:
    specs = [
        GenSpec(
            index=i,
            procs=procs,
            host=HOST,
            port=server.port,
            key=server.key,
            sku=HOT_SKU,
            location=HOT_LOCATION,
            tag=f"ol{next(_runs)}-w{server.workers}-{time.time_ns()}",
            rate=rate / procs,
            warmup_s=profile.open_loop_warmup_s,
            duration_s=profile.open_loop_seconds,
            grace_s=GRACE_S,
            client=client,
            connections=16,
        )
        for i in range(procs)
    ]
    ctx = multiprocessing.get_context("spawn")
    ready: Queue[int] = ctx.Queue()
    results: Queue[GenResult] = ctx.Queue()
    go = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    children = [
        ctx.Process(target=child_main, args=(s, ready, go, start_at, results), daemon=True)
        for s in specs
    ]
    try:
        for child in children:
            child.start()
        _await_ready(children, ready)
        start_at.value = time.monotonic() + 0.2
        go.set()
        time.sleep(max(0.0, start_at.value + profile.open_loop_warmup_s - time.monotonic()))
        window = CpuWindow({"api": server.pids, "redis": lambda: [redis.pid]}).start()
        deadline = time.monotonic() + profile.open_loop_seconds + GRACE_S + 30
        gathered = [_next_result(children, results, deadline) for _ in children]
        cpu = window.stop(sum(g.cpu_seconds for g in gathered))
    finally:
        started = [child for child in children if child.pid is not None]
        for child in started:  # normally all have exited; after an interrupt, stop them now
            if child.is_alive():
                child.terminate()
        for child in started:
            child.join(timeout=5)
            if child.is_alive():
                child.kill()
                child.join()
    return _row(server, redis, profile, rate, client, procs, gathered, cpu)


def _await_ready(children: Sequence[BaseProcess], ready: Queue[int]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = len(children)
    while waiting:
        try:
            ready.get(timeout=0.2)
            waiting -= 1
        except queue.Empty:
            dead = [c for c in children if c.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError("an open-loop generator process did not start") from None


def _next_result(
    children: Sequence[BaseProcess],
    results: Queue[GenResult],
    deadline: float,
) -> GenResult:
    while time.monotonic() < deadline:
        try:
            return results.get(timeout=0.5)
        except queue.Empty:
            if all(c.exitcode is not None for c in children):
                break  # every child has exited and nothing more will arrive
    raise RuntimeError("an open-loop generator process returned no result")


def _row(
    server: ApiServer,
    redis: BenchRedis,
    profile: Profile,
    rate: int,
    client: str,
    procs: int,
    gathered: list[GenResult],
    cpu: CpuSample,
) -> Row:
    latencies = [x for g in gathered for x in g.latencies]
    lag = Latency.of_seconds([x for g in gathered for x in g.send_lag])
    latency = Latency.of_seconds(latencies)
    errors = sum(g.errors + g.unfinished for g in gathered)
    return Row(
        section="open-loop",
        scenario=f"open loop POST /v1/reservations ({client} x{procs})",
        fsync=redis.appendfsync,
        workers=server.workers,
        concurrency=f"{rate:,}/s",
        ops_s=len(latencies) / profile.open_loop_seconds,
        p50_ms=latency.p50,
        p99_ms=latency.p99,
        baseline="offered",
        baseline_ops_s=float(rate),
        target=f"p99 < {TARGET_P99_MS:g} ms",
        passed=latency.p99 < TARGET_P99_MS and errors == 0,
        errors=errors,
        cpu=cpu.shares(),
        extra={
            "api_process_cpu": cpu.process_shares("api"),
            "p90_ms": latency.p90,
            "max_ms": latency.max,
            "scheduled": sum(g.scheduled for g in gathered),
            "unfinished": sum(g.unfinished for g in gathered),
            "send_lag_p50_ms": lag.p50,
            "send_lag_p99_ms": lag.p99,
            "send_lag_max_ms": lag.max,
            "generator": client,
            "processes": procs,
            "error_samples": [e for g in gathered for e in g.error_samples][:5],
        },
    )
