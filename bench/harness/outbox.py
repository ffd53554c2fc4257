"""A realistic outbox for the ledger benchmarks, written by the real store (the Lua scripts).

Counts for ``SKUS`` SKUs at ``LOCATIONS`` locations, then orders of 1-3 lines: most are
confirmed and fulfilled, some released, some left held; now and then a recount. Many asyncio
tasks share one connection pool, so Redis sees a few dozen scripts in flight at once.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis

from stocksync.config import Settings
from stocksync.domain.model import Line, Location
from stocksync.store.redis_store import RedisStockStore

SKUS = 50
LOCATIONS = 5
ON_HAND = 1_000_000  # never short: every reservation succeeds
TASKS = 48
CHANNELS = ("web", "app", "pos", "marketplace")


def sku_name(i: int) -> str:
    return f"BENCH-SKU-{i:03d}"


def location_name(i: int) -> str:
    return f"bench-loc-{i}"


@dataclass
class Generated:
    events: int = 0  # outbox entries written (one per line of each change, one per location)
    calls: int = 0  # script calls
    seconds: float = 0.0


async def open_client(url: str, size: int) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url, max_connections=size, timeout=10.0, decode_responses=True
    )
    return Redis(connection_pool=pool)


async def _seed(store: RedisStockStore, tally: Generated) -> None:
    for i in range(LOCATIONS):
        await store.upsert_location(
            Location(location_name(i), f"Bench {i}", "store", pickup=True, ship=True)
        )
    tally.events += LOCATIONS
    counts = [
        store.set_count(sku_name(s), location_name(loc), ON_HAND, source="bench")
        for s in range(SKUS)
        for loc in range(LOCATIONS)
    ]
    await asyncio.gather(*counts)
    tally.events += len(counts)
    tally.calls += LOCATIONS + len(counts)


async def _order(store: RedisStockStore, rng: random.Random, order_id: str) -> tuple[int, int]:
    """One order's life; returns (outbox events, script calls)."""
    n = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
    skus = rng.sample(range(SKUS), n)
    lines = [Line(sku_name(s), location_name(rng.randrange(LOCATIONS)), 1 + s % 3) for s in skus]
    channel = rng.choice(CHANNELS)
    await store.reserve(order_id, channel, lines, 900, customer_ref=f"c{rng.randrange(10**6)}")
    outcome = rng.random()
    if outcome < 0.55:  # sold: confirmed, then picked up / shipped
        await store.confirm(order_id)
        await store.fulfill(order_id)
        return 3 * n, 3
    if outcome < 0.85:  # abandoned cart
        await store.release(order_id)
        return 2 * n, 2
    if outcome < 0.95:  # still held
        return n, 1
    await store.confirm(order_id)  # confirmed, awaiting pickup
    return 2 * n, 2


async def generate(url: str, namespace: str, target_events: int, seed: int = 7) -> Generated:
    """Fill ``namespace``'s outbox with about ``target_events`` entries (a few more)."""
    client = await open_client(url, TASKS)
    tally = Generated()
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        store = RedisStockStore(client, Settings(namespace=namespace))
        await _seed(store, tally)
        ids = itertools.count()

        async def worker(task: int) -> None:
            rng = random.Random(seed * 1000 + task)
            while tally.events < target_events:
                if rng.random() < 0.02:  # a store recount of one position
                    s, loc = rng.randrange(SKUS), rng.randrange(LOCATIONS)
                    await store.adjust(
                        sku_name(s),
                        location_name(loc),
                        rng.randrange(-3, 4) or 1,
                        reason="recount",
                        source="bench",
                        source_event_id=f"adj-{namespace}-{next(ids)}",
                    )
                    tally.events, tally.calls = tally.events + 1, tally.calls + 1
                    continue
                events, calls = await _order(store, rng, f"ord-{namespace}-{next(ids)}")
                tally.events, tally.calls = tally.events + events, tally.calls + calls

        await asyncio.gather(*(worker(t) for t in range(TASKS)))
    finally:
        await client.aclose()
    tally.seconds = loop.time() - started
    return tally
