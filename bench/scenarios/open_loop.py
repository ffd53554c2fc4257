"""The ``open_loop`` section: latency at a fixed offered rate, from several generator processes.

The processes share one start time and interleave their schedules; their latencies (measured
from each request's due time, see :mod:`bench.load.loadgen`) are merged before taking
percentiles. The generators run on the same 2 cores as the server, so their CPU is reported
beside it.
"""

from __future__ import annotations

import itertools
import time

from bench.harness.config import HOT_LOCATION, HOT_SKU, Profile
from bench.harness.cpu import CpuSample
from bench.harness.report import Row
from bench.harness.servers import HOST, ApiServer, BenchRedis
from bench.harness.stats import Latency
from bench.load.loadgen import GenResult, GenSpec
from bench.load.open_loop_driver import drive

TARGET_P99_MS = 10.0
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
    gathered, cpu = drive(
        specs,
        server.cpu_groups(redis),
        profile.open_loop_warmup_s,
        profile.open_loop_seconds + GRACE_S + 30,
    )
    return _row(server, redis, profile, rate, client, procs, gathered, cpu)


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
        section="open_loop",
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
