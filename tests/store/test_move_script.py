"""move.lua against a real Redis: re-sourcing a reservation to another location, all or
nothing."""

from __future__ import annotations

import pytest

from stocksync.domain.errors import InsufficientStock, InvalidTransition, NotFound, Unprocessable
from stocksync.domain.model import Line, State
from stocksync.store.keys import ordered_member
from stocksync.store.pickups import PickupOps
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import Stocked, outbox, wait_for_server_ms_after


async def raw(store: RedisStockStore, reservation_id: str) -> dict[str, str]:
    fields: dict[str, str] = await store.client.hgetall(store.keys.reservation(reservation_id))
    return fields


async def test_move_shifts_units_indexes_and_clears_at_risk(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1, "store-a")
    await stocked(sku, 3, "store-b")
    await store.reserve("r1", "chat", [Line(sku, "store-a", 1)], 600, "crm-1")
    await store.confirm("r1", pickup_seconds=3600)
    sale = await store.adjust(sku, "store-a", -1, reason="sale", source="pos", source_event_id="t1")
    assert sale.at_risk_reservations == 1
    deadline = (await store.get_reservation("r1")).expires_at_ms

    moved = await PickupOps(store).move("r1", "store-a", "store-b")

    assert moved.lines == [Line(sku, "store-b", 1)]
    assert (moved.state, moved.at_risk, moved.expires_at_ms) == (State.CONFIRMED, False, deadline)
    assert (await store.position(sku, "store-a")).reserved == 0
    assert (await store.position(sku, "store-b")).reserved == 1
    keys, member = store.keys, ordered_member("r1", moved.created_at_ms)
    assert await store.client.zscore(keys.at_risk, member) is None
    assert await store.client.zscore(keys.location_at_risk("store-a"), member) is None
    assert await store.client.zscore(keys.holds(sku, "store-a"), "r1") is None
    assert await store.client.zscore(keys.holds(sku, "store-b"), "r1") == deadline
    for loc, score in (("store-a", None), ("store-b", deadline)):
        assert await store.client.zscore(keys.location_reservations(loc, "confirmed"), member) == (
            score
        )
        ages = await store.client.zrange(keys.hold_ages(loc), 0, -1)
        assert (f"{sku}:{member}" in ages) == (score is not None)
    events = [e for e in await outbox(store, sku) if e["kind"] == "moved"]
    assert [(e["loc"], e["d_reserved"], e["reserved"]) for e in events] == [
        ("store-a", "-1", "0"),
        ("store-b", "1", "1"),
    ]
    assert {(e["res"], e["ch"], e["qty"], e["from"], e["to"]) for e in events} == {
        ("r1", "chat", "1", "store-a", "store-b")
    }
    # The hold then ends at its new store.
    await store.fulfill("r1")
    assert (await store.position(sku, "store-b")).on_hand == 2
    assert (await store.position(sku, "store-b")).reserved == 0


async def test_move_merges_with_a_line_already_at_the_target(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    other = sku + "-x"
    await stocked(sku, 2, "store-a")
    await stocked(sku, 5, "store-b")
    await stocked(other, 1, "store-a")
    lines = [Line(sku, "store-a", 2), Line(sku, "store-b", 1), Line(other, "store-a", 1)]
    await store.reserve("r1", "web", lines, 600)
    await stocked(other, 1, "store-b")
    moved = await PickupOps(store).move("r1", "store-a", "store-b")
    assert moved.lines == [Line(sku, "store-b", 3), Line(other, "store-b", 1)]
    assert (await store.position(sku, "store-b")).reserved == 3
    assert (await store.position(other, "store-a")).reserved == 0


async def test_move_to_a_store_without_stock_changes_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    other = sku + "-x"
    await stocked(sku, 2, "store-a")
    await stocked(other, 2, "store-a")
    await stocked(sku, 5, "store-b")
    await stocked(other, 1, "store-b", safety=1)
    await store.reserve("r1", "web", [Line(sku, "store-a", 1), Line(other, "store-a", 1)], 600)
    before = await raw(store, "r1")
    stream_length = await store.client.xlen(store.keys.outbox)
    with pytest.raises(InsufficientStock) as err:
        await PickupOps(store).move("r1", "store-a", "store-b")
    assert [(s.sku, s.location_id, s.requested, s.available) for s in err.value.short_lines] == [
        (other, "store-b", 1, 0)
    ]
    assert await raw(store, "r1") == before
    assert await store.client.xlen(store.keys.outbox) == stream_length
    assert (await store.position(sku, "store-b")).reserved == 0
    assert (await store.position(sku, "store-a")).reserved == 1


async def test_move_reaps_due_holds_at_the_target_first(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1, "store-a")
    await stocked(sku, 1, "store-b")
    stale = await store.reserve("stale", "web", [Line(sku, "store-b", 1)], 1)
    await store.reserve("r1", "web", [Line(sku, "store-a", 1)], 600)
    assert stale.reservation.expires_at_ms is not None
    await wait_for_server_ms_after(store, stale.reservation.expires_at_ms)  # due, unread
    moved = await PickupOps(store).move("r1", "store-a", "store-b")
    assert moved.lines == [Line(sku, "store-b", 1)]
    assert (await store.client.hget(store.keys.reservation("stale"), "state")) == "expired"


async def test_move_refuses_what_cannot_move(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5, "store-a")
    await stocked(sku, 5, "store-b")
    await store.reserve("r1", "web", [Line(sku, "store-a", 1)], 600)
    ops = PickupOps(store)
    with pytest.raises(NotFound):
        await ops.move("nope", "store-a", "store-b")
    with pytest.raises(NotFound):
        await ops.move("r1", "store-a", "store-zz")
    with pytest.raises(Unprocessable):
        await ops.move("r1", "store-b", "store-a")
    await store.release("r1")
    with pytest.raises(InvalidTransition) as err:
        await ops.move("r1", "store-a", "store-b")
    assert err.value.extra["state"] == "released"
