"""reserve.lua against a real Redis: all-or-nothing, idempotency, summing, raw state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stocksync.domain.errors import IdempotencyConflict, InsufficientStock, NotFound
from stocksync.domain.model import Line, State
from stocksync.store.keys import ON_HAND, RESERVED
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import outbox

Stocked = Callable[..., Any]


async def test_reserve_holds_units_and_writes_raw_state(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    result = await store.reserve("r1", "web", [Line(sku, "store-a", 2)], ttl_seconds=60)
    assert result.created
    assert result.reservation.state is State.HELD
    raw = await store.client.hgetall(store.keys.position(sku, "store-a"))
    assert raw[RESERVED] == "2"
    assert raw[ON_HAND] == "5"
    assert await store.client.zscore(store.keys.active, "r1") == result.reservation.expires_at_ms
    assert await store.client.zscore(store.keys.holds(sku, "store-a"), "r1") is not None


async def test_reserve_is_all_or_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5, "store-a")
    await stocked(sku, 1, "store-b")
    with pytest.raises(InsufficientStock) as err:
        await store.reserve(
            "r1", "web", [Line(sku, "store-a", 3), Line(sku, "store-b", 2)], ttl_seconds=60
        )
    assert [(s.location_id, s.requested, s.available) for s in err.value.short_lines] == [
        ("store-b", 2, 1)
    ]
    for loc in ("store-a", "store-b"):
        assert (await store.position(sku, loc)).reserved == 0
    assert not await store.client.exists(store.keys.reservation("r1"))


async def test_reserve_sums_lines_for_the_same_position(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3)
    with pytest.raises(InsufficientStock) as err:
        await store.reserve(
            "r1", "web", [Line(sku, "store-a", 2), Line(sku, "store-a", 2)], ttl_seconds=60
        )
    assert err.value.short_lines[0].requested == 4
    result = await store.reserve(
        "r2", "web", [Line(sku, "store-a", 1), Line(sku, "store-a", 2)], ttl_seconds=60
    )
    assert result.reservation.lines == [Line(sku, "store-a", 3)]
    assert (await store.position(sku, "store-a")).available == 0


async def test_reserve_retry_replays_and_different_body_conflicts(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    first = await store.reserve("r1", "web", [Line(sku, "store-a", 2)], ttl_seconds=60)
    again = await store.reserve("r1", "web", [Line(sku, "store-a", 2)], ttl_seconds=60)
    assert not again.created
    assert again.reservation == first.reservation
    assert (await store.position(sku, "store-a")).reserved == 2
    with pytest.raises(IdempotencyConflict):
        await store.reserve("r1", "web", [Line(sku, "store-a", 3)], ttl_seconds=60)
    assert (await store.position(sku, "store-a")).reserved == 2


async def test_reserve_unknown_location_changes_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    with pytest.raises(NotFound):
        await store.reserve(
            "r1", "web", [Line(sku, "store-a", 1), Line(sku, "nowhere", 1)], ttl_seconds=60
        )
    assert (await store.position(sku, "store-a")).reserved == 0


async def test_reserve_honours_safety_stock(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5, safety=2)
    with pytest.raises(InsufficientStock) as err:
        await store.reserve("r1", "web", [Line(sku, "store-a", 4)], ttl_seconds=60)
    assert err.value.short_lines[0].available == 3
    await store.reserve("r2", "web", [Line(sku, "store-a", 3)], ttl_seconds=60)


async def test_reserve_appends_one_event_per_line_with_increasing_seq(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5, "store-a")
    await stocked(sku, 5, "store-b")
    await store.reserve(
        "r1", "web", [Line(sku, "store-a", 1), Line(sku, "store-b", 1)], ttl_seconds=60
    )
    events = [fields for _, fields in await store.client.xrange(store.keys.outbox)]
    sku_events = [e for e in events if e["sku"] == sku]
    assert [e["kind"] for e in sku_events] == ["counted", "counted", "held", "held"]
    assert [int(e["seq"]) for e in sku_events] == [1, 2, 3, 4]
    assert sku_events[-1]["res"] == "r1"
    assert sku_events[-1]["d_reserved"] == "1"


async def test_reserve_with_confirm_holds_and_confirms_in_one_call(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3)
    result = await store.reserve(
        "order-1", "web", [Line(sku, "store-a", 2)], ttl_seconds=900, confirm=True
    )
    assert result.created
    assert result.reservation.state is State.CONFIRMED
    stored = await store.get_reservation("order-1")
    assert stored.state is State.CONFIRMED
    assert stored.expires_at_ms is None  # a placed order waits for fulfilment, not a timer
    assert [kind for kind, _ in stored.history] == ["held", "confirmed"]
    kinds = [e["kind"] for e in await outbox(store, sku)]
    assert kinds[-2:] == ["held", "confirmed"]
    position = await store.position(sku, "store-a")
    assert (position.on_hand, position.reserved) == (3, 2)


async def test_reserve_with_confirm_retry_replays_and_plain_hold_conflicts(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3)
    lines = [Line(sku, "store-a", 1)]
    await store.reserve("order-2", "web", lines, ttl_seconds=900, confirm=True)
    again = await store.reserve("order-2", "web", lines, ttl_seconds=900, confirm=True)
    assert not again.created
    assert again.reservation.state is State.CONFIRMED
    with pytest.raises(IdempotencyConflict):
        await store.reserve("order-2", "web", lines, ttl_seconds=900)
    assert (await store.position(sku, "store-a")).reserved == 1


async def test_reserve_with_confirm_short_reserves_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1)
    with pytest.raises(InsufficientStock):
        await store.reserve(
            "order-3", "web", [Line(sku, "store-a", 2)], ttl_seconds=900, confirm=True
        )
    with pytest.raises(NotFound):
        await store.get_reservation("order-3")
    assert (await store.position(sku, "store-a")).reserved == 0
