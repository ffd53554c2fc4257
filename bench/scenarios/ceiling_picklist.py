"""Part of the ``ceiling`` section: the longest script Redis runs for a store's pick list when one
location holds many carts (active web holds).

Redis runs one script at a time: while a script runs, every other client waits, so the longest
script bounds everyone's latency. Seeds ``carts`` held reservations at one location through
``RedisStockStore.reserve`` (concurrent callers), then reads the pick list the way
``GET /v1/locations/{id}/pickups`` does (staff's default states, and the held ones) with
``SLOWLOG`` recording every command, and reports the longest entry.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from bench.harness.aio import run_async
from bench.harness.config import Profile
from bench.harness.report import Row
from bench.harness.servers import BenchRedis
from bench.scenarios.ceiling import open_client
from stocksync.api.routers.pickups import DEFAULT_STATES, PICKUP_LIMIT
from stocksync.config import Settings
from stocksync.domain.model import Line, Location, State
from stocksync.store.pickups import PickupOps
from stocksync.store.redis_store import RedisStockStore

TARGET_MS = 1.0
LOCATION = "bench-pick"
SKU = "BENCH-PICK-1"
SEED_CONCURRENCY = 32
SLOWLOG_KEEP = 128  # the reads below are a handful of commands: all of them stay in the log
_run_ids = itertools.count()


ORDERS = 50  # confirmed orders waiting for pickup among the carts: what the pick list shows


async def seed_carts(store: RedisStockStore, carts: int, tag: str) -> None:
    """``carts`` one-unit web holds at LOCATION and ORDERS confirmed ones,
    ``SEED_CONCURRENCY`` callers at a time."""
    await store.upsert_location(Location(LOCATION, "Bench pick store", "store", pickup=True))
    await store.set_count(SKU, LOCATION, carts + ORDERS)
    numbers = iter(range(carts + ORDERS))
    lines = [Line(SKU, LOCATION, 1)]

    async def caller() -> None:
        for n in numbers:
            order = n >= carts
            await store.reserve(f"{tag}-cart-{n}", "web", lines, 3600, confirm=order)

    await asyncio.gather(*(caller() for _ in range(SEED_CONCURRENCY)))


async def longest_pick_list(bench: BenchRedis, carts: int) -> dict[str, object]:
    client = await open_client(bench.url, SEED_CONCURRENCY)
    try:
        store = RedisStockStore(client, Settings(namespace=f"benchpick{next(_run_ids)}"))
        started = time.monotonic()
        await seed_carts(store, carts, "p")
        seed_s = time.monotonic() - started
        held = (await store.position(SKU, LOCATION)).reserved
        if held != carts + ORDERS:
            raise RuntimeError(f"seeded {held} holds, wanted {carts}")
        pickups = PickupOps(store)
        previous = await client.config_get("slowlog-*")
        await client.config_set("slowlog-max-len", SLOWLOG_KEEP)
        await client.config_set("slowlog-log-slower-than", 0)
        try:
            longest_us: dict[str, int] = {}
            for name, states in (("staff", DEFAULT_STATES), ("held", (State.HELD,))):
                await client.slowlog_reset()
                found = await pickups.find("loc", LOCATION, states=states, limit=PICKUP_LIMIT)
                entries = await client.slowlog_get(SLOWLOG_KEEP)
                longest_us[name] = max(int(e["duration"]) for e in entries)
                if name == "held" and len(found) != min(carts, PICKUP_LIMIT):
                    raise RuntimeError(f"the pick list showed {len(found)} held carts")
                if name == "staff" and len(found) != ORDERS:
                    raise RuntimeError(f"the pick list showed {len(found)} orders")
        finally:
            for setting, value in previous.items():
                await client.config_set(str(setting), str(value))
        return {"carts": carts, "seed_s": round(seed_s, 1), "longest_us": longest_us}
    finally:
        await client.aclose()
        await client.connection_pool.disconnect()


def run(bench: BenchRedis, profile: Profile) -> Row:
    found = run_async(longest_pick_list(bench, profile.picklist_carts))
    longest = found["longest_us"]
    assert isinstance(longest, dict)
    # The figure is the pick list (staff's default states: 50 orders among the carts). The
    # held view lists PICKUP_LIMIT carts whole: its cost is its output (~8 µs a cart), reported
    # beside it, not a walk.
    worst_ms = longest["staff"] / 1000
    return Row(
        section="ceiling",
        scenario=f"longest script: pick list, {profile.picklist_carts:,} carts at one location",
        fsync=bench.appendfsync,
        workers=None,
        concurrency="1",
        ops_s=0.0,  # one read: its time is the figure (p50 = p99 = the longest script)
        p50_ms=worst_ms,
        p99_ms=worst_ms,
        target=f"<= {TARGET_MS:g} ms",
        passed=worst_ms <= TARGET_MS,
        extra={**found, "longest_ms": worst_ms},
    )
