"""set_count.lua against a real Redis: as-of rule, stale counts, compare-and-set, idempotency."""

from __future__ import annotations

import pytest

from stocksync.domain.errors import IdempotencyConflict, NotFound, OnHandMismatch
from stocksync.domain.model import Line, Position, State
from stocksync.store.keys import COUNT_AS_OF, ON_HAND
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import (
    Stocked,
    add_location,
    outbox,
    server_ms,
    wait_for_server_ms_after,
)


async def test_set_count_sets_on_hand_and_emits_counted(store: RedisStockStore, sku: str) -> None:
    await add_location(store)
    result = await store.set_count(sku, "store-a", 7)
    assert result.applied
    assert not result.replayed
    assert result.position == Position(sku, "store-a", 7, 0, 0)
    assert await store.position(sku, "store-a") == result.position
    raw = await store.client.hgetall(store.keys.position(sku, "store-a"))
    assert raw[ON_HAND] == "7"
    assert int(raw[COUNT_AS_OF]) <= await server_ms(store)
    assert set(raw) == {ON_HAND, COUNT_AS_OF}  # reserved and safety are 0: absent
    [event] = await outbox(store, sku)
    assert event["kind"] == "counted"
    assert (event["count"], event["d_on_hand"], event["on_hand"]) == ("7", "7", "7")
    assert int(event["seq"]) == result.seq == 1


async def test_set_count_as_of_adds_deltas_that_occurred_after_it(
    store: RedisStockStore, sku: str
) -> None:
    await add_location(store)
    now = await server_ms(store)
    await store.set_count(sku, "store-a", 10, as_of_ms=now - 60_000)
    await store.adjust(
        sku,
        "store-a",
        -2,
        reason="sale",
        source="pos",
        source_event_id="s1",
        occurred_at_ms=now - 30_000,
    )
    await store.adjust(
        sku,
        "store-a",
        5,
        reason="receipt",
        source="wms",
        source_event_id="g1",
        occurred_at_ms=now - 10_000,
    )
    await store.reserve("r1", "pos", [Line(sku, "store-a", 1)], ttl_seconds=600)
    await store.fulfill("r1")  # a sale now: a delta of -1 after any count's as_of
    assert (await store.position(sku, "store-a")).on_hand == 12

    # Counted 20 twenty seconds ago: the -2 sale is in it, the receipt and the fulfil are not.
    result = await store.set_count(sku, "store-a", 20, as_of_ms=now - 20_000)
    assert result.applied
    assert result.position.on_hand == 20 + 5 - 1
    assert (await store.position(sku, "store-a")).on_hand == 24


async def test_set_count_older_than_newest_count_is_recorded_not_applied(
    store: RedisStockStore, sku: str
) -> None:
    await add_location(store)
    now = await server_ms(store)
    await store.set_count(sku, "store-a", 10, as_of_ms=now - 1_000)
    stale = await store.set_count(sku, "store-a", 4, as_of_ms=now - 5_000)
    assert not stale.applied
    assert stale.position.on_hand == 10
    assert (await store.position(sku, "store-a")).on_hand == 10
    event = (await outbox(store, sku))[-1]
    assert event["kind"] == "count_stale"
    assert (event["count"], event["as_of"], event["on_hand"]) == ("4", str(now - 5_000), "10")
    assert int(event["seq"]) == stale.seq


async def test_set_count_expected_on_hand_compare_and_set(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    swapped = await store.set_count(sku, "store-a", 8, expected_on_hand=5)
    assert swapped.applied
    assert swapped.position.on_hand == 8
    events_before = await outbox(store)
    with pytest.raises(OnHandMismatch) as err:
        await store.set_count(sku, "store-a", 1, expected_on_hand=5, safety_stock=3)
    assert err.value.extra["on_hand"] == 8
    assert await store.position(sku, "store-a") == Position(sku, "store-a", 8, 0, 0)
    assert await outbox(store) == events_before


async def test_set_count_sets_safety_stock_and_keeps_it_when_omitted(
    store: RedisStockStore, sku: str
) -> None:
    await add_location(store)
    first = await store.set_count(sku, "store-a", 10, safety_stock=3)
    assert first.position.safety_stock == 3
    assert (await store.position(sku, "store-a")).available == 7
    second = await store.set_count(sku, "store-a", 12)
    assert second.position == Position(sku, "store-a", 12, 0, 3)
    lowered = await store.set_count(sku, "store-a", 12, safety_stock=0)
    assert lowered.position.safety_stock == 0


async def test_set_count_replay_by_source_event_id_does_not_reapply(
    store: RedisStockStore, sku: str
) -> None:
    await add_location(store)
    first = await store.set_count(sku, "store-a", 10, source="wms", source_event_id="c1")
    await store.adjust(sku, "store-a", -1, reason="sale", source="pos", source_event_id="s1")
    again = await store.set_count(sku, "store-a", 10, source="wms", source_event_id="c1")
    assert again.replayed
    assert again.applied
    assert again.seq == first.seq
    assert again.position == first.position  # the original result, not a new count
    assert (await store.position(sku, "store-a")).on_hand == 9
    assert [e["kind"] for e in await outbox(store, sku)] == ["counted", "adjusted"]


async def test_set_count_same_event_id_different_body_conflicts(
    store: RedisStockStore, sku: str
) -> None:
    await add_location(store)
    await store.set_count(sku, "store-a", 10, source="wms", source_event_id="c1")
    with pytest.raises(IdempotencyConflict):
        await store.set_count(sku, "store-a", 11, source="wms", source_event_id="c1")
    with pytest.raises(IdempotencyConflict):
        await store.set_count(
            sku, "store-a", 10, safety_stock=2, source="wms", source_event_id="c1"
        )
    assert await store.position(sku, "store-a") == Position(sku, "store-a", 10, 0, 0)
    other_source = await store.set_count(sku, "store-a", 11, source="pos", source_event_id="c1")
    assert other_source.applied
    assert not other_source.replayed


async def test_set_count_unknown_location_raises_not_found(
    store: RedisStockStore, sku: str
) -> None:
    await add_location(store)
    with pytest.raises(NotFound):
        await store.set_count(sku, "nowhere", 5)
    assert not await store.client.exists(store.keys.position(sku, "nowhere"))
    assert await outbox(store, sku) == []


async def test_set_count_below_reserved_flags_newest_holds(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 6)
    old = await store.reserve("hold-old", "web", [Line(sku, "store-a", 2)], ttl_seconds=600)
    await wait_for_server_ms_after(store, old.reservation.created_at_ms)
    mid = await store.reserve("hold-mid", "web", [Line(sku, "store-a", 2)], ttl_seconds=600)
    await wait_for_server_ms_after(store, mid.reservation.created_at_ms)
    await store.reserve("hold-new", "web", [Line(sku, "store-a", 1)], ttl_seconds=600)

    result = await store.set_count(sku, "store-a", 3)  # reserved 5: two units short
    assert result.applied
    assert result.position.available_raw == -2
    assert result.at_risk_reservations == 2
    ids = ("hold-old", "hold-mid", "hold-new")
    flags = {r: (await store.get_reservation(r)).at_risk for r in ids}
    assert flags == {"hold-old": False, "hold-mid": True, "hold-new": True}
    risk = (await outbox(store, sku))[-1]
    assert (risk["kind"], risk["shortfall"], risk["flagged"]) == ("oversell_risk", "2", "2")


async def test_set_count_that_still_covers_holds_flags_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 6)
    await store.reserve("r1", "web", [Line(sku, "store-a", 3)], ttl_seconds=600)
    result = await store.set_count(sku, "store-a", 3)
    assert result.at_risk_reservations == 0
    assert not (await store.get_reservation("r1")).at_risk
    assert "oversell_risk" not in [e["kind"] for e in await outbox(store, sku)]


async def test_fulfil_reported_after_a_newer_count_only_ends_the_hold(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3)
    await store.reserve("collected-1", "chat", [Line(sku, "store-a", 1)], ttl_seconds=600)
    collected_at = await server_ms(store)
    now = await wait_for_server_ms_after(store, collected_at)
    await store.set_count(sku, "store-a", 2, as_of_ms=now)  # counted after the collection
    result = await store.fulfill("collected-1", occurred_at_ms=collected_at)
    assert result.reservation.state is State.FULFILLED
    position = await store.position(sku, "store-a")
    assert (position.on_hand, position.reserved) == (2, 0)  # not sold twice
    fulfilled = [e for e in await outbox(store, sku) if e["kind"] == "fulfilled"]
    assert fulfilled[0]["d_on_hand"] == "0"
    assert fulfilled[0]["occurred_at"] == str(collected_at)


async def test_count_older_than_a_late_reported_fulfil_keeps_it(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3)
    await store.reserve("collected-2", "chat", [Line(sku, "store-a", 1)], ttl_seconds=600)
    counted_at = await server_ms(store)
    collected_at = await wait_for_server_ms_after(store, counted_at)
    await wait_for_server_ms_after(store, collected_at)
    await store.fulfill("collected-2", occurred_at_ms=collected_at)
    assert (await store.position(sku, "store-a")).on_hand == 2
    # A count taken before the collection arrives late: the sale after it is kept.
    await store.set_count(sku, "store-a", 3, as_of_ms=counted_at)
    assert (await store.position(sku, "store-a")).on_hand == 2
    # A count taken after it already excludes the unit: it is not taken off again.
    await store.set_count(sku, "store-a", 2, as_of_ms=await server_ms(store))
    assert (await store.position(sku, "store-a")).on_hand == 2
