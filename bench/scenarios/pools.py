"""The ``pools`` section: online stock (issue 14) against its same-run baselines.

- **Pool reservations vs location reservations**: ``store.reserve`` from this one process
  (``concurrency`` asyncio callers, a fixed count each round) with one pool line (a 3-location
  `priority` pool with buffers: the script chooses the location) vs one location line on the same
  positions, in alternating rounds so a neighbour's burst lands on both. Store level: the HTTP
  path adds the same per-request cost to both, so this is the ratio's floor.
- **Batch availability vs single reads**: one ``pool_availability_many`` of 200 SKUs vs 200
  ``pool_availability`` calls (what a listing page would otherwise do), timed back to back.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from time import perf_counter

from bench.harness.aio import run_async
from bench.harness.config import CHANNEL, TTL_SECONDS, Profile
from bench.harness.report import Row
from bench.harness.servers import BenchRedis
from bench.harness.stats import Latency
from stocksync.config import Settings
from stocksync.domain.model import Line, Location, Pool, PoolLine, PoolLocation
from stocksync.store.connection import open_store
from stocksync.store.redis_store import RedisStockStore

NAMESPACE = "benchpools"
LOCATIONS = ("pw-1", "pw-2", "pw-3")
POOL = Pool(
    "bench-web",
    "bench web",
    (CHANNEL,),
    "priority",
    tuple(PoolLocation(loc, rank, 2) for rank, loc in enumerate(LOCATIONS, start=1)),
)
SKUS = 200
ON_HAND = 1_000_000_000
ROUNDS = 4
FSYNC = "always"
READ_REPEATS = 5


async def _reserve_round(
    store: RedisStockStore, pool: bool, tag: str, total: int, concurrency: int
) -> tuple[float, list[float]]:
    counter = itertools.count()
    samples: list[float] = []

    async def caller() -> None:
        while (i := next(counter)) < total:
            sku = f"PS-{i % SKUS}"
            line: Line | PoolLine = (
                PoolLine(sku, POOL.pool_id, 1) if pool else Line(sku, LOCATIONS[0], 1)
            )
            began = perf_counter()
            await store.reserve(f"{tag}-{i}", CHANNEL, [line], TTL_SECONDS)
            samples.append(perf_counter() - began)

    started = perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return perf_counter() - started, samples


async def _measure(url: str, profile: Profile) -> list[Row]:
    settings = Settings(redis_url=url, namespace=NAMESPACE, redis_pool_size=64)
    per_round = max(profile.cluster_reservations // ROUNDS, 200)
    concurrency = profile.cluster_concurrency
    async with open_store(settings, url) as store:
        for loc in LOCATIONS:
            await store.upsert_location(Location(loc, loc, "warehouse", ship=True))
            await asyncio.gather(*(store.set_count(f"PS-{k}", loc, ON_HAND) for k in range(SKUS)))
        await store.upsert_pool(POOL)
        await _reserve_round(store, True, "warm-p", per_round // 4, concurrency)
        await _reserve_round(store, False, "warm-l", per_round // 4, concurrency)
        spent = {True: 0.0, False: 0.0}
        samples: dict[bool, list[float]] = {True: [], False: []}
        for r in range(ROUNDS):
            for pool in (False, True):
                tag = f"{'p' if pool else 'l'}{r}"
                seconds, got = await _reserve_round(store, pool, tag, per_round, concurrency)
                spent[pool] += seconds
                samples[pool] += got
        skus = [f"PS-{k}" for k in range(SKUS)]
        batch_s, single_s = [], []
        for _ in range(READ_REPEATS):
            began = perf_counter()
            await store.pool_availability_many(POOL.pool_id, skus)
            batch_s.append(perf_counter() - began)
            began = perf_counter()
            for sku in skus:
                await store.pool_availability(sku, POOL.pool_id)
            single_s.append(perf_counter() - began)
    made = per_round * ROUNDS
    rows = []
    location_ops = made / spent[False]
    for pool in (False, True):
        latency = Latency.of_seconds(samples[pool])
        rows.append(
            Row(
                section="pools",
                scenario="store.reserve, pool line (3 locations, priority)"
                if pool
                else "store.reserve, location line (baseline)",
                fsync=FSYNC,
                workers=None,
                concurrency=str(concurrency),
                ops_s=made / spent[pool],
                p50_ms=latency.p50,
                p99_ms=latency.p99,
                baseline="location line" if pool else "",
                baseline_ops_s=location_ops if pool else None,
                target="≥ 0.8x" if pool else "",
                passed=(made / spent[pool]) / location_ops >= 0.8 if pool else None,
                extra={"reservations": made},
            )
        )
    batch, single = sorted(batch_s)[len(batch_s) // 2], sorted(single_s)[len(single_s) // 2]
    rows.append(
        Row(
            section="pools",
            scenario=f"availability of {SKUS} SKUs in a pool: one batch call",
            fsync=FSYNC,
            workers=None,
            concurrency="1",
            ops_s=1 / batch,
            p50_ms=batch * 1000,
            p99_ms=max(batch_s) * 1000,
            baseline=f"{SKUS} single reads",
            baseline_ops_s=1 / single,
            extra={"single_reads_ms": round(single * 1000, 2)},
        )
    )
    return rows


def run(profile: Profile, tmp_dir: Path | None, log: Callable[[str], None]) -> list[Row]:
    log("pools: pool vs location reservations, batch vs single availability reads")
    with BenchRedis(FSYNC, tmp_dir) as server:
        rows: list[Row] = run_async(_measure(server.url, profile))
    return rows
