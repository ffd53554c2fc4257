"""reserve.lua with pool lines against a real server: the strategies' choices, buffers kept,
all-or-nothing with location lines, refusals, replays and the life after the hold."""

from __future__ import annotations

import pytest

from stocksync.domain.errors import (
    CrossDomain,
    IdempotencyConflict,
    InsufficientStock,
    NotFound,
    Unprocessable,
)
from stocksync.domain.model import Line, Location, PoolLine, PoolSource, State
from stocksync.store.redis_store import RedisStockStore
from tests.support.pools import put_pool
from tests.support.store import wait_for_state

BERLIN = (52.52, 13.40)
HAMBURG = (53.55, 9.99)
MUNICH = (48.14, 11.58)


async def _three(store: RedisStockStore, sku: str, counts: tuple[int, int, int]) -> None:
    """wh (no coordinates), st-hh (Hamburg), st-muc (Munich), with ``counts`` of ``sku``."""
    await store.upsert_location(Location("wh", "Warehouse", "warehouse", ship=True))
    await store.upsert_location(Location("st-hh", "Hamburg", "store", *HAMBURG, True, True))
    await store.upsert_location(Location("st-muc", "Munich", "store", *MUNICH, True, True))
    for loc, n in zip(("wh", "st-hh", "st-muc"), counts, strict=True):
        await store.set_count(sku, loc, n)


async def test_priority_takes_the_first_location_that_offers_all_units(
    store: RedisStockStore, sku: str
) -> None:
    await _three(store, sku, (3, 10, 10))
    await put_pool(store, "web", [("wh", 1, 0), ("st-hh", 2, 2), ("st-muc", 3, 0)])
    result = await store.reserve("r1", "web", [PoolLine(sku, "web", 4)], ttl_seconds=60)
    assert result.created
    assert result.reservation.lines == [Line(sku, "st-hh", 4)]
    assert result.reservation.pool_sources == [PoolSource(sku, "web", "st-hh", 4)]
    assert (await store.position(sku, "st-hh")).reserved == 4
    assert (await store.position(sku, "wh")).reserved == 0


async def test_split_fills_in_order_and_never_takes_a_buffer(
    store: RedisStockStore, sku: str
) -> None:
    await _three(store, sku, (3, 5, 10))
    await put_pool(store, "web", [("wh", 1, 0), ("st-hh", 2, 2), ("st-muc", 3, 9)])
    # offered: wh 3, st-hh 3, st-muc 1 = 7
    result = await store.reserve(
        "r1", "web", [PoolLine(sku, "web", 7)], ttl_seconds=60, allow_split=True
    )
    assert result.reservation.lines == [
        Line(sku, "st-hh", 3),
        Line(sku, "st-muc", 1),
        Line(sku, "wh", 3),
    ]
    with pytest.raises(InsufficientStock) as err:
        await store.reserve("r2", "web", [PoolLine(sku, "web", 1)], ttl_seconds=60)
    (short,) = err.value.short_lines
    assert (short.pool, short.location_id, short.requested, short.available) == ("web", None, 1, 0)
    assert err.value.extra["short_lines"] == [
        {"sku": sku, "pool": "web", "requested": 1, "available": 0}
    ]
    assert (await store.position(sku, "st-muc")).available == 9


async def test_without_split_a_line_the_pool_could_only_split_is_short(
    store: RedisStockStore, sku: str
) -> None:
    await _three(store, sku, (2, 2, 2))
    await put_pool(store, "web", [("wh", 1, 0), ("st-hh", 2, 0), ("st-muc", 3, 0)])
    with pytest.raises(InsufficientStock) as err:
        await store.reserve("r1", "web", [PoolLine(sku, "web", 3)], ttl_seconds=60)
    assert err.value.short_lines[0].available == 6
    assert not await store.client.exists(store.keys.reservation("r1"))


async def test_nearest_and_most_available(store: RedisStockStore, sku: str) -> None:
    await _three(store, sku, (9, 4, 5))
    await put_pool(
        store, "near", [("wh", 1, 0), ("st-hh", 2, 0), ("st-muc", 3, 0)], strategy="nearest"
    )
    await put_pool(
        store,
        "most",
        [("wh", 1, 0), ("st-hh", 2, 0), ("st-muc", 3, 0)],
        strategy="most_available",
    )
    near_berlin = await store.reserve(
        "r1", "web", [PoolLine(sku, "near", 2)], ttl_seconds=60, near=BERLIN
    )
    assert near_berlin.reservation.lines == [Line(sku, "st-hh", 2)]
    most = await store.reserve("r2", "web", [PoolLine(sku, "most", 2)], ttl_seconds=60)
    assert most.reservation.lines == [Line(sku, "wh", 2)]
    with pytest.raises(Unprocessable):
        await store.reserve("r3", "web", [PoolLine(sku, "near", 1)], ttl_seconds=60)


async def test_fewest_splits_keeps_a_basket_at_one_location(
    store: RedisStockStore, sku: str
) -> None:
    other = sku + "-B"
    await _three(store, sku, (5, 5, 5))
    for loc, n in (("wh", 0), ("st-hh", 1), ("st-muc", 1)):
        await store.set_count(other, loc, n)
    await put_pool(
        store, "fs", [("wh", 1, 0), ("st-hh", 2, 0), ("st-muc", 3, 0)], strategy="fewest_splits"
    )
    result = await store.reserve(
        "r1", "web", [PoolLine(sku, "fs", 2), PoolLine(other, "fs", 1)], ttl_seconds=60
    )
    assert result.reservation.lines == [Line(sku, "st-hh", 2), Line(other, "st-hh", 1)]


async def test_pool_and_location_lines_merge_and_replay(store: RedisStockStore, sku: str) -> None:
    await _three(store, sku, (0, 5, 0))
    await put_pool(store, "web", [("st-hh", 1, 1)])
    lines = [PoolLine(sku, "web", 2), Line(sku, "st-hh", 2)]
    first = await store.reserve("r1", "web", lines, ttl_seconds=60)
    # the location line takes 2 first: 3 left, the buffer keeps 1, the pool offers 2
    assert first.reservation.lines == [Line(sku, "st-hh", 4)]
    again = await store.reserve("r1", "web", lines, ttl_seconds=60)
    assert not again.created
    assert again.reservation == first.reservation
    assert (await store.get_reservation("r1")).pool_sources == first.reservation.pool_sources
    with pytest.raises(IdempotencyConflict):
        await store.reserve("r1", "web", [Line(sku, "st-hh", 4)], ttl_seconds=60)
    done = await store.fulfill("r1")
    assert done.reservation.state is State.FULFILLED
    assert (await store.position(sku, "st-hh")).on_hand == 1


async def test_refusals_change_nothing(store: RedisStockStore, sku: str) -> None:
    await _three(store, sku, (5, 5, 5))
    await put_pool(store, "web", [("wh", 1, 0)])
    await put_pool(store, "app-only", [("wh", 1, 0)], channels=["app"])
    with pytest.raises(NotFound):
        await store.reserve("r1", "web", [PoolLine(sku, "nope", 1)], ttl_seconds=60)
    with pytest.raises(Unprocessable):
        await store.reserve("r2", "web", [PoolLine(sku, "app-only", 1)], ttl_seconds=60)
    await store.upsert_location(Location("st-eu", "EU", "store", domain="eu"))
    with pytest.raises(CrossDomain):
        await store.reserve(
            "r3", "web", [PoolLine(sku, "web", 1), Line(sku, "st-eu", 1)], ttl_seconds=60
        )
    assert (await store.position(sku, "wh")).reserved == 0


async def test_released_and_expired_pool_holds_give_the_units_back(
    store: RedisStockStore, sku: str
) -> None:
    await _three(store, sku, (4, 0, 0))
    await put_pool(store, "web", [("wh", 1, 1)])
    await store.reserve("r1", "web", [PoolLine(sku, "web", 3)], ttl_seconds=60)
    with pytest.raises(InsufficientStock):
        await store.reserve("r2", "web", [PoolLine(sku, "web", 1)], ttl_seconds=60)
    await store.release("r1")
    await store.reserve("r3", "web", [PoolLine(sku, "web", 3)], ttl_seconds=1)
    expired = await wait_for_state(store, "r3", State.EXPIRED)
    assert expired.lines == [Line(sku, "wh", 3)]
    again = await store.reserve("r4", "web", [PoolLine(sku, "web", 3)], ttl_seconds=60)
    assert again.reservation.lines == [Line(sku, "wh", 3)]
    assert (await store.position(sku, "wh")).reserved == 3
