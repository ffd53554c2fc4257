"""Every change records who made it: an API key, a connector, a worker or the CLI."""

from __future__ import annotations

import anyio

from stocksync.domain.model import Line
from stocksync.metrics import Metrics
from stocksync.store.base import acting_as
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.reaper import run_reaper
from stocksync.workers.supervisor import supervised
from tests.support.store import Stocked, event_actors

WAIT_LIMIT_SECONDS = 20.0


async def test_a_worker_records_itself_and_a_block_names_its_actor(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    with acting_as("cli:test"):
        await stocked(sku, 2)
        await store.reserve("short", "web", [Line(sku, "store-a", 1)], ttl_seconds=1)
    assert await store.reap() is not None  # nothing due yet: the hold lives a second
    metrics = Metrics()
    with anyio.fail_after(WAIT_LIMIT_SECONDS):
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                supervised, "reaper", lambda: run_reaper(store, metrics, interval=0.02), metrics
            )
            # Polling another task's effect in Redis, bounded by fail_after above.
            while ("expired", "worker:reaper") not in await event_actors(store):  # noqa: ASYNC110
                await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
    recorded = await event_actors(store)
    assert ("counted", "cli:test") in recorded
    assert ("held", "cli:test") in recorded
