"""Spread load: availability reads, reserve, confirm, fulfill and release over many positions.

A fixed number of closed-loop shoppers (``bench.spread_gen``) split over a few generator
processes drive one system at a time; ops/s and p50/p99 are reported per operation. The
generators share the 2 cores with the server, so their CPU is reported beside it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from bench.harness import pg
from bench.harness.config import FSYNC_OURS, Profile
from bench.harness.cpu import CpuSample, CpuWindow, wait_idle
from bench.harness.pg import TempDatabase
from bench.harness.report import RESULTS_DIR, Row
from bench.harness.seeding import seed_grid
from bench.harness.servers import HOST, ApiServer, BenchRedis, create_api_key
from bench.harness.stats import Latency
from bench.peer.server import PeerServer, peer_fsync, postgres_pids
from bench.spread_gen import (
    OPERATIONS,
    SpreadResult,
    SpreadSpec,
    child_main,
    location_name,
    sku_name,
)

START_DELAY_S = 2.0  # for the generator processes to start and connect
SETTLE_TIMEOUT_S = 180.0  # for a server's start-up work (stocksync's audit) to finish
Log = Callable[[str], None]


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
    settle_s = wait_idle(target.api_pids, SETTLE_TIMEOUT_S)
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
        window = CpuWindow({"api": target.api_pids, "redis": target.store_pids}).start()
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


def rows(target: Target, run: SpreadRun, concurrency: int, label: str = "spread") -> list[Row]:
    """One row for all operations together, then one per operation."""
    every = run.all_ops()
    out = [
        Row(
            section="spread",
            scenario=f"{label}: {target.name}, all ops",
            fsync=target.fsync,
            workers=target.workers,
            concurrency=str(concurrency),
            ops_s=run.ops_s,
            p50_ms=every.p50,
            p99_ms=every.p99,
            errors=run.errors,
            cpu=run.cpu.shares(),
            extra={
                "counts": run.counts,
                "short_409": run.short,
                "error_samples": run.error_samples,
                "api_process_cpu": run.cpu.process_shares("api"),
                "settle_s": run.settle_s,
            },
        )
    ]
    for op in OPERATIONS:
        latency = run.latencies[op]
        out.append(
            Row(
                section="spread",
                scenario=f"{label}: {target.name}, {op}",
                fsync=target.fsync,
                workers=target.workers,
                concurrency=str(concurrency),
                ops_s=run.counts[op] / run.seconds,
                p50_ms=latency.p50,
                p99_ms=latency.p99,
            )
        )
    return out


def compare(ours: list[Row], peer: list[Row]) -> None:
    """Each of our rows beside the peer's row of the same operation."""
    for mine, theirs in zip(ours, peer, strict=True):
        mine.baseline, mine.baseline_ops_s = "row-lock peer", theirs.ops_s


def ours_target(server: ApiServer, redis: BenchRedis, fsync: str) -> Target:
    return Target(
        "stocksync",
        fsync,
        server.workers,
        server.port,
        server.key,
        server.pids,
        lambda: [redis.pid],
    )


def run(
    api: Callable[[], AbstractContextManager[ApiServer]],
    redis: BenchRedis,
    profile: Profile,
    log: Log,
    notes: list[str],
) -> list[Row]:
    """Seed the same grid in both systems, run the same shoppers against each."""
    workers, skus, locations = profile.hot_workers, profile.spread_skus, profile.spread_locations
    concurrency = profile.spread_concurrency
    tag = f"sp{time.time_ns()}"

    def load(target: Target) -> SpreadRun:
        log(f"    spread load on {target.name}: {concurrency} shoppers")
        return drive(
            target,
            skus,
            locations,
            concurrency,
            profile.spread_procs,
            profile.spread_seconds,
            profile.spread_warmup_s,
            tag + target.name[0],
        )

    sku_ids = [sku_name(i) for i in range(skus)]
    location_ids = [location_name(i) for i in range(locations)]
    seconds = seed_grid(redis.url, sku_ids, location_ids, 1_000)
    log(f"    {skus * locations:,} positions loaded into Redis in {seconds:.1f} s")
    reason = pg.unreachable()
    if reason:
        with api() as server:  # the ledger in SQLite in the data dir, the embedded default
            target = ours_target(server, redis, FSYNC_OURS + ", ledger SQLite")
            ours = rows(target, load(target), concurrency)
        notes.append(f"spread load: row-lock peer skipped: {reason}")
        return ours
    # The ledger on the same PostgreSQL as the peer: fulfil writes its sale through to the
    # ledger before answering, and SQLite (one writer at a time) would bound that, not us.
    with TempDatabase() as ledger:
        data_dir = redis.dir / "api-pg-ledger"
        key = create_api_key(redis.url, data_dir, ledger.url)
        log_path = RESULTS_DIR / "logs" / f"serve-spread-w{workers}.log"
        with ApiServer(redis.url, data_dir, workers, key, log_path, ledger.url) as server:
            target = ours_target(server, redis, FSYNC_OURS + ", ledger PostgreSQL")
            ours = rows(target, load(target), concurrency)
    with PeerServer(workers, RESULTS_DIR / "logs") as peer:
        peer.seed_grid(sku_ids, location_ids, 1_000)
        target = Target(
            "row-lock peer",
            peer_fsync(),
            workers,
            peer.port,
            peer.key,
            peer.pids,
            postgres_pids,
        )
        theirs = rows(target, load(target), concurrency)
    compare(ours, theirs)
    return ours + theirs
