"""Hold expiry against a real Redis: lazy reaping by scripts on the SKU, and the reaper pass."""

from __future__ import annotations

import asyncio
from typing import cast

from stocksync.domain.model import Line, Position, State
from stocksync.store.keys import RESERVED
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import Stocked, outbox, wait_for_server_ms_after


async def raw_state(store: RedisStockStore, rid: str) -> str | None:
    """The stored state, read without a script (so nothing is reaped by looking)."""
    state = await store.client.hget(store.keys.reservation(rid), "state")
    return cast("str | None", state)


async def hold(store: RedisStockStore, sku: str, rid: str, qty: int, ttl: int) -> int:
    """Reserve ``qty`` units; returns the hold's deadline in server milliseconds."""
    result = await store.reserve(rid, "web", [Line(sku, "store-a", qty)], ttl_seconds=ttl)
    deadline = result.reservation.expires_at_ms
    assert deadline is not None
    return deadline


async def test_reserve_reaps_stale_hold_so_it_never_blocks_a_sale(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1)
    await wait_for_server_ms_after(store, await hold(store, sku, "old", 1, ttl=1))
    assert await raw_state(store, "old") == "held"  # due, but nothing has reaped it yet

    fresh = await store.reserve("new", "web", [Line(sku, "store-a", 1)], ttl_seconds=60)
    assert fresh.created
    assert await raw_state(store, "old") == "expired"
    assert await store.position(sku, "store-a") == Position(sku, "store-a", 1, 1, 0)
    assert await store.client.zscore(store.keys.holds(sku, "store-a"), "old") is None
    kinds = [(e["kind"], e.get("res")) for e in await outbox(store, sku)]
    assert kinds[-2:] == [("expired", "old"), ("held", "new")]


async def test_many_due_holds_at_a_position_never_refuse_a_sale(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    # More holds came due at once than one script reaps in passing (8): the reserve that
    # needs their units expires as many more as it is short (24 at most), instead of refusing.
    due = 30
    await stocked(sku, due)
    holds = [hold(store, sku, f"old-{i:02d}", 1, ttl=1) for i in range(due)]
    deadlines = await asyncio.gather(*holds)
    await wait_for_server_ms_after(store, max(deadlines))

    fresh = await store.reserve("all", "web", [Line(sku, "store-a", due)], ttl_seconds=60)
    assert fresh.created
    assert await store.position(sku, "store-a") == Position(sku, "store-a", due, due, 0)
    states = [await raw_state(store, f"old-{i:02d}") for i in range(due)]
    assert states == ["expired"] * due


async def test_position_read_reaps_due_holds(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3)
    await wait_for_server_ms_after(store, await hold(store, sku, "r1", 2, ttl=1))
    raw = await store.client.hget(store.keys.position(sku, "store-a"), RESERVED)
    assert raw == "2"
    assert (await store.position(sku, "store-a")).reserved == 0
    assert await raw_state(store, "r1") == "expired"


async def test_reap_expires_due_reservations_and_reports_lag_and_active(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 10)
    first = await hold(store, sku, "held-short", 2, ttl=1)
    await hold(store, sku, "pickup-short", 3, ttl=600)
    confirmed = await store.confirm("pickup-short", pickup_seconds=1)
    await hold(store, sku, "held-long", 1, ttl=600)
    await hold(store, sku, "no-deadline", 1, ttl=600)
    await store.confirm("no-deadline")
    last_due = confirmed.reservation.expires_at_ms
    assert last_due is not None
    await wait_for_server_ms_after(store, max(first, last_due))

    result = await store.reap()
    assert result.expired == 2
    assert 0 < result.lag_seconds < 10
    assert result.active == 2
    states = {r: (await store.get_reservation(r)).state for r in ("held-short", "pickup-short")}
    assert states == {"held-short": State.EXPIRED, "pickup-short": State.EXPIRED}
    assert await store.position(sku, "store-a") == Position(sku, "store-a", 10, 2, 0)
    expired = [e for e in await outbox(store, sku) if e["kind"] == "expired"]
    assert sorted((e["res"], e["d_reserved"]) for e in expired) == [
        ("held-short", "-2"),
        ("pickup-short", "-3"),
    ]


async def test_reap_is_idempotent(store: RedisStockStore, stocked: Stocked, sku: str) -> None:
    await stocked(sku, 5)
    deadline = await hold(store, sku, "r1", 2, ttl=1)
    await hold(store, sku, "r2", 1, ttl=600)
    await wait_for_server_ms_after(store, deadline)
    assert (await store.reap()).expired == 1
    events = await outbox(store, sku)
    again = await store.reap()
    assert (again.expired, again.lag_seconds, again.active) == (0, 0, 1)
    assert await outbox(store, sku) == events
    assert await store.position(sku, "store-a") == Position(sku, "store-a", 5, 1, 0)
    assert await raw_state(store, "r1") == "expired"


async def test_reap_honours_limit_oldest_first(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    deadlines = [await hold(store, sku, f"r{i}", 1, ttl=1) for i in range(3)]
    await wait_for_server_ms_after(store, max(deadlines))
    first = await store.reap(limit=2)
    assert (first.expired, first.active) == (2, 1)
    assert await raw_state(store, "r0") == "expired"
    assert await raw_state(store, "r2") == "held"
    second = await store.reap(limit=2)
    assert (second.expired, second.active) == (1, 0)
    assert (await store.position(sku, "store-a")).reserved == 0


async def test_reap_skips_an_extended_hold(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    deadline = await hold(store, sku, "r1", 2, ttl=1)
    extended = await store.extend("r1", ttl_seconds=600)
    assert extended.reservation.expires_at_ms is not None
    assert extended.reservation.expires_at_ms > deadline
    await wait_for_server_ms_after(store, deadline)
    result = await store.reap()
    assert (result.expired, result.active) == (0, 1)
    assert (await store.get_reservation("r1")).state is State.HELD
    assert (await store.position(sku, "store-a")).reserved == 2
