"""Helpers for tests on the Redis store: outbox reads and bounded waits on Redis server time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

from stocksync.domain.model import Location, Reservation, State
from stocksync.store.redis_store import RedisStockStore

Stocked = Callable[..., Any]

POLL_SECONDS = 0.02
WAIT_LIMIT_SECONDS = 10.0


async def outbox(store: RedisStockStore, sku: str | None = None) -> list[dict[str, str]]:
    """Outbox events of the store's namespace, oldest first (only ``sku``'s when given)."""
    raw = cast("list[tuple[str, dict[str, str]]]", await store.client.xrange(store.keys.outbox))
    events = [fields for _, fields in raw]
    return [e for e in events if sku is None or e["sku"] == sku]


async def server_ms(store: RedisStockStore) -> int:
    """Redis server time in milliseconds, the clock every script uses."""
    seconds, micros = await store.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def wait_for_server_ms_after(store: RedisStockStore, ms: int) -> int:
    """Poll Redis TIME (a plain read, which reaps nothing) until it is past ``ms``."""
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while (now := await server_ms(store)) <= ms:
        assert time.monotonic() < deadline, f"Redis time did not pass {ms}"
        await asyncio.sleep(POLL_SECONDS)
    return now


async def wait_for_state(store: RedisStockStore, reservation_id: str, state: State) -> Reservation:
    """Poll the reservation (each read reaps due holds) until it reaches ``state``."""
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while (reservation := await store.get_reservation(reservation_id)).state is not state:
        assert time.monotonic() < deadline, f"{reservation_id} stuck in {reservation.state}"
        await asyncio.sleep(POLL_SECONDS)
    return reservation


async def add_location(store: RedisStockStore, location_id: str = "store-a") -> None:
    await store.upsert_location(Location(location_id, location_id.title(), "store"))


async def event_actors(store: RedisStockStore) -> list[tuple[str, str]]:
    """(kind, actor) of every outbox event, in order."""
    return [(e["kind"], e.get("actor", "")) for e in await outbox(store)]
