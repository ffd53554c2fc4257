"""The ``scale`` section: Redis memory per position and per active hold, and spread-load latency,
by catalogue size.

Positions are loaded in steps on one Redis (with the API stopped), so each step's
``used_memory`` delta divided by the positions it added is their cost, SKU-level keys included.
An AOF rewrite runs (and is waited for) after each load, so none lands in a measurement. Then the
spread load runs over every loaded SKU for a few seconds. After the first load,
``scale_reservations`` held reservations are created and their memory measured the same way
(outbox trimmed before and after); they stay active through the later steps.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import redis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis

from bench.harness.config import Profile
from bench.harness.report import RESULTS_DIR, Row
from bench.harness.seeding import seed_grid
from bench.harness.servers import ApiServer, BenchRedis, create_api_key
from bench.load.spread_driver import SpreadRun, Target, drive
from bench.load.spread_gen import location_name, sku_name
from stocksync.config import Settings
from stocksync.domain.model import Line
from stocksync.store.keys import Keys
from stocksync.store.redis_store import RedisStockStore

LOCATIONS = 20
MAX_BYTES_PER_POSITION = 150
MAX_LATENCY_GROWTH = 1.20
SAMPLE_KEYS = 200
HOLD_CONNECTIONS = 32
REWRITE_TIMEOUT_S = 180.0
QUIET_TIMEOUT_S = 10.0
Log = Callable[[str], None]


def used_memory(client: redis.Redis) -> int:
    """``used_memory`` once the API's connections are gone: a closing client's buffers are
    freed as Redis notices it, and would otherwise land in a delta as negative bytes."""
    deadline = time.monotonic() + QUIET_TIMEOUT_S
    while int(client.info("clients")["connected_clients"]) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded wait for connections of a stopped server to close
    return int(client.info("memory")["used_memory"])


def trim_outbox(client: redis.Redis) -> None:
    client.xtrim(Keys("default").outbox, maxlen=0, approximate=False)


def rewrite_aof(client: redis.Redis) -> None:
    """Rewrite the AOF now and wait, so an automatic rewrite cannot fork mid-measurement.

    The load itself may have started one (the AOF doubled): that one is waited for first.
    """
    _wait_for_rewrite(client)
    client.bgrewriteaof()
    _wait_for_rewrite(client)


def _wait_for_rewrite(client: redis.Redis) -> None:
    deadline = time.monotonic() + REWRITE_TIMEOUT_S
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return
        time.sleep(0.1)  # bounded poll of a background rewrite
    raise RuntimeError("AOF rewrite did not finish in time")


def position_key_bytes(client: redis.Redis, skus: int) -> float:
    """Mean ``MEMORY USAGE`` of sampled position hashes (the key alone, no SKU-level keys)."""
    keys = Keys("default")
    rng = random.Random(skus)
    sampled = [
        client.memory_usage(
            keys.position(sku_name(rng.randrange(skus)), location_name(rng.randrange(LOCATIONS))),
            samples=0,
        )
        or 0
        for _ in range(SAMPLE_KEYS)
    ]
    return sum(sampled) / len(sampled)


async def hold_many(url: str, count: int, skus: int, tag: str) -> None:
    pool = BlockingConnectionPool.from_url(
        url, max_connections=HOLD_CONNECTIONS, timeout=30.0, decode_responses=True
    )
    client = AsyncRedis(connection_pool=pool)
    store = RedisStockStore(client, Settings(namespace="default"))
    rng = random.Random(tag)
    try:
        for start in range(0, count, 200):
            await asyncio.gather(
                *(
                    store.reserve(
                        f"{tag}-{i}",
                        "web",
                        [Line(sku_name(rng.randrange(skus)), location_name(i % LOCATIONS), 1)],
                        600,
                    )
                    for i in range(start, min(count, start + 200))
                )
            )
    finally:
        await client.aclose()
        await pool.disconnect()  # a pool passed in is not closed with its client


def hold_bytes(client: redis.Redis, url: str, count: int, skus: int) -> float:
    trim_outbox(client)
    before = used_memory(client)
    asyncio.run(hold_many(url, count, skus, f"mem{time.time_ns()}"))
    trim_outbox(client)
    return (used_memory(client) - before) / count


def run(bench: BenchRedis, profile: Profile, log: Log) -> list[Row]:
    client = redis.Redis.from_url(bench.url)
    data_dir = bench.dir / "api"
    key = create_api_key(bench.url, data_dir)
    workers = profile.hot_workers
    rows: list[Row] = []
    loaded = 0
    holds: float | None = None
    try:
        for positions in profile.scale_positions:
            skus = positions // LOCATIONS
            trim_outbox(client)
            before = used_memory(client)
            seconds = seed_grid(
                bench.url,
                [sku_name(i) for i in range(loaded, skus)],
                [location_name(j) for j in range(LOCATIONS)],
                1_000,
            )
            added = (skus - loaded) * LOCATIONS
            per_position = (used_memory(client) - before) / added
            loaded = skus
            log(f"    {added:,} positions loaded in {seconds:.1f} s, {per_position:.0f} B each")
            rewrite_aof(client)
            if holds is None:  # on the first, smallest catalogue, before any API has run
                holds = hold_bytes(client, bench.url, profile.scale_reservations, skus)
            log_path = RESULTS_DIR / "logs" / f"serve-scale-{positions}.log"
            with ApiServer(bench.url, data_dir, workers, key, keep_log=log_path) as server:
                target = Target(
                    "stocksync",
                    "appendfsync always",
                    workers,
                    server.port,
                    server.key,
                    server.pids,
                    lambda: [bench.pid],
                    server.workers_pids,
                )
                result = drive(
                    target,
                    skus,
                    LOCATIONS,
                    profile.spread_concurrency,
                    profile.spread_procs,
                    profile.scale_seconds,
                    profile.spread_warmup_s,
                    f"sc{positions}-{time.time_ns()}",
                )
            row = scale_row(positions, result, workers, profile.spread_concurrency, per_position)
            row.extra["position_key_bytes"] = round(position_key_bytes(client, skus), 1)
            row.extra["load_s"] = round(seconds, 1)
            row.extra["load_positions_s"] = round(added / seconds)
            rows.append(row)
    finally:
        client.close()
    judge(rows, holds or 0.0)
    return rows


def scale_row(
    positions: int,
    run: SpreadRun,
    workers: int,
    concurrency: int,
    per_position: float,
) -> Row:
    every, reserve = run.all_ops(), run.latencies["reserve"]
    return Row(
        section="scale",
        scenario=f"scale: spread load at {positions:,} positions",
        fsync="always",
        workers=workers,
        concurrency=str(concurrency),
        ops_s=run.ops_s,
        p50_ms=every.p50,
        p99_ms=every.p99,
        errors=run.errors,
        cpu=run.cpu.shares(),
        extra={
            "positions": positions,
            "bytes_per_position": round(per_position, 1),
            "reserve_p50_ms": reserve.p50,
            "reserve_p99_ms": reserve.p99,
            "error_samples": run.error_samples,
            "settle_s": run.settle_s,
        },
    )


def judge(rows: list[Row], hold_bytes: float) -> None:
    """The largest catalogue against the smallest: flat reserve p50, bounded bytes/position.

    Reserve latency is the one judged: the all-ops figures carry fulfil's write-through to the
    SQL ledger, which does not depend on the catalogue size.
    """
    first, last = rows[0], rows[-1]
    last.extra["bytes_per_active_hold"] = round(hold_bytes, 1)
    last.baseline = f"{first.extra['positions']:,} positions"
    last.baseline_ops_s = first.ops_s
    last.target = f"reserve p50 <= {MAX_LATENCY_GROWTH:g}x, <= {MAX_BYTES_PER_POSITION} B/pos"
    before, after = (
        float(str(first.extra["reserve_p50_ms"])),
        float(str(last.extra["reserve_p50_ms"])),
    )
    growth = after / before if before else float("inf")
    last.extra["reserve_p50_growth"] = round(growth, 3)
    # Bytes per position at the largest step: the target is set at 1,000,000 positions; at
    # the small steps the namespace's fixed keys (outbox, seq, indexes) dominate.
    largest = float(str(last.extra["bytes_per_position"]))
    last.passed = growth <= MAX_LATENCY_GROWTH and largest <= MAX_BYTES_PER_POSITION
