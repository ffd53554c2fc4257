"""move_stock.lua against a real Redis: units between on_hand, damaged and quality_control, or
written off; idempotency, refusals that change nothing, holds flagged at risk."""

from __future__ import annotations

from typing import Any

import pytest

from stocksync.domain.errors import (
    IdempotencyConflict,
    InsufficientUnits,
    NotFound,
    StockRegressed,
    Unprocessable,
)
from stocksync.domain.model import Line, Position, State
from stocksync.domain.returns import MoveResult
from stocksync.store.keys import DAMAGED, ON_HAND, QUALITY_CONTROL, RESERVED
from stocksync.store.redis_store import RedisStockStore
from tests.support.keyspace import namespace_keys
from tests.support.store import Stocked, outbox, server_ms, wait_for_server_ms_after

LOC = "store-a"


async def move(
    store: RedisStockStore,
    sku: str,
    qty: int,
    from_bucket: str,
    to_bucket: str,
    event_id: str = "m1",
    reason: str = "inspection",
) -> MoveResult:
    return await store.move_units(
        sku,
        LOC,
        qty,
        from_bucket=from_bucket,
        to_bucket=to_bucket,
        reason=reason,
        source="store",
        source_event_id=event_id,
    )


async def unchanged_after(store: RedisStockStore, call: Any, error: type[Exception]) -> None:
    """``call`` raises ``error`` and leaves every key of the namespace as it was."""
    before = await namespace_keys(store.client, store.settings.namespace)
    with pytest.raises(error):
        await call
    assert await namespace_keys(store.client, store.settings.namespace) == before


async def test_move_units_from_on_hand_to_damaged_emits_stock_moved(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    result = await move(store, sku, 2, "on_hand", "damaged")
    assert result.position == Position(sku, LOC, 3, 0, 0, damaged=2)
    assert (result.applied, result.replayed, result.at_risk_reservations) == (True, False, 0)
    assert await store.position(sku, LOC) == result.position
    event = (await outbox(store, sku))[-1]
    assert int(event["seq"]) == result.seq
    assert {k: event[k] for k in event if k not in ("at", "seq", "sku", "loc", "fp")} == {
        "kind": "stock_moved",
        "qty": "2",
        "d_on_hand": "-2",
        "d_reserved": "0",
        "d_damaged": "2",
        "on_hand": "3",
        "reserved": "0",
        "damaged": "2",
        "quality_control": "0",
        "in_transit": "0",
        "from": "on_hand",
        "to": "damaged",
        "reason": "inspection",
        "src": "store",
        "src_id": "m1",
    }


async def test_move_units_deletes_a_bucket_that_reaches_zero(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 4)
    await move(store, sku, 4, "on_hand", "quality_control", "m1")
    raw = await store.client.hgetall(store.keys.position(sku, LOC))
    assert ON_HAND not in raw
    assert raw[QUALITY_CONTROL] == "4"
    await move(store, sku, 1, "quality_control", "on_hand", "m2")
    result = await move(store, sku, 3, "quality_control", "damaged", "m3")
    raw = await store.client.hgetall(store.keys.position(sku, LOC))
    assert QUALITY_CONTROL not in raw
    assert (raw[ON_HAND], raw[DAMAGED]) == ("1", "3")
    assert result.position == Position(sku, LOC, 1, 0, 0, damaged=3)


async def test_move_units_written_off_leave_the_books_and_on_hand_is_untouched(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await move(store, sku, 2, "on_hand", "damaged", "m1")
    result = await move(store, sku, 2, "damaged", "written_off", "m2", reason="scrapped")
    assert result.position == Position(sku, LOC, 3, 0, 0)
    event = (await outbox(store, sku))[-1]
    assert (event["d_on_hand"], event["to"], event["damaged"]) == ("0", "written_off", "0")
    assert "d_quality_control" not in event
    assert event["d_damaged"] == "-2"


async def test_move_units_into_and_out_of_on_hand_are_deltas_for_the_as_of_rule(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    counted_at = await server_ms(store)
    await wait_for_server_ms_after(store, counted_at)
    await move(store, sku, 2, "on_hand", "damaged", "m1")  # after the count was taken
    await move(store, sku, 1, "damaged", "on_hand", "m2")
    # A count taken before the moves gets them: 10 counted, -2 + 1 since.
    await store.set_count(sku, LOC, 10, as_of_ms=counted_at)
    assert await store.position(sku, LOC) == Position(sku, LOC, 9, 0, 0, damaged=1)


async def test_move_units_from_an_empty_bucket_is_refused_and_changes_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await unchanged_after(store, move(store, sku, 1, "damaged", "on_hand"), InsufficientUnits)
    await unchanged_after(
        store, move(store, sku, 1, "quality_control", "written_off"), InsufficientUnits
    )
    with pytest.raises(InsufficientUnits) as refused:
        await move(store, sku, 6, "on_hand", "damaged")
    assert refused.value.extra == {
        "bucket": "on_hand",
        "sku": sku,
        "location_id": LOC,
        "requested": 6,
        "available": 5,
    }


async def test_move_units_counts_physical_on_hand_not_available(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3)
    await store.reserve("r1", "web", [Line(sku, LOC, 3)], 600)
    await unchanged_after(store, move(store, sku, 4, "on_hand", "damaged"), InsufficientUnits)
    # Nothing is available, but the 3 units are on the shelf: one found broken moves.
    result = await move(store, sku, 1, "on_hand", "damaged")
    assert result.position == Position(sku, LOC, 2, 3, 0, damaged=1)


async def test_move_units_out_of_on_hand_under_holds_flags_them_newest_first(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 4)
    await store.reserve("old", "web", [Line(sku, LOC, 2)], 600)
    await store.reserve("mid", "web", [Line(sku, LOC, 1)], 600)
    await store.reserve("new", "web", [Line(sku, LOC, 1)], 600)
    result = await move(store, sku, 2, "on_hand", "damaged")  # 2 on hand for 4 promised
    assert result.at_risk_reservations == 2
    assert [(await store.get_reservation(r)).at_risk for r in ("old", "mid", "new")] == [
        False,
        True,
        True,
    ]
    kinds = [(e["kind"], e.get("res", "")) for e in (await outbox(store, sku))[-4:]]
    assert kinds == [
        ("stock_moved", ""),
        ("at_risk", "new"),
        ("at_risk", "mid"),
        ("oversell_risk", ""),
    ]
    # A move that does not take from on_hand flags nothing, even while on_hand is short.
    back = await move(store, sku, 1, "damaged", "quality_control", "m2")
    assert back.at_risk_reservations == 0


async def test_move_units_reaps_due_holds_at_the_position_first(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 2)
    held = await store.reserve("due", "web", [Line(sku, LOC, 2)], 1)
    assert held.reservation.expires_at_ms is not None
    await wait_for_server_ms_after(store, held.reservation.expires_at_ms)
    raw = await store.client.hgetall(store.keys.position(sku, LOC))
    assert raw[RESERVED] == "2"  # due, not reaped yet (a plain read reaps nothing)
    result = await move(store, sku, 2, "on_hand", "damaged")
    assert (result.position.reserved, result.at_risk_reservations) == (0, 0)
    assert (await store.get_reservation("due")).state is State.EXPIRED


async def test_move_units_retry_replays_the_original_answer(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await store.reserve("r1", "web", [Line(sku, LOC, 4)], 600)
    first = await move(store, sku, 3, "on_hand", "damaged")
    await move(store, sku, 1, "damaged", "on_hand", "m2")  # the position moves on
    events = len(await outbox(store, sku))
    before = await namespace_keys(store.client, store.settings.namespace)
    again = await move(store, sku, 3, "on_hand", "damaged")
    assert again.replayed
    assert (again.position, again.seq, again.at_risk_reservations) == (
        first.position,
        first.seq,
        first.at_risk_reservations,
    )
    assert first.at_risk_reservations == 1
    assert len(await outbox(store, sku)) == events
    assert await namespace_keys(store.client, store.settings.namespace) == before


async def test_move_units_same_key_other_body_is_a_conflict_and_changes_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await move(store, sku, 1, "on_hand", "damaged")
    await unchanged_after(store, move(store, sku, 2, "on_hand", "damaged"), IdempotencyConflict)
    await unchanged_after(
        store, move(store, sku, 1, "on_hand", "quality_control"), IdempotencyConflict
    )
    # The key is shared with adjustments: a move's key reused by a delta is a conflict too.
    adjust = store.adjust(sku, LOC, -1, reason="sale", source="store", source_event_id="m1")
    await unchanged_after(store, adjust, IdempotencyConflict)


async def test_move_units_at_an_unknown_location_or_of_a_frozen_sku_changes_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    unknown = store.move_units(
        sku,
        "store-nowhere",
        1,
        from_bucket="on_hand",
        to_bucket="damaged",
        reason="inspection",
        source="store",
        source_event_id="m1",
    )
    await unchanged_after(store, unknown, NotFound)
    await store.client.sadd(store.keys.regressed, sku)  # type: ignore[misc]
    await unchanged_after(store, move(store, sku, 1, "on_hand", "damaged"), StockRegressed)


@pytest.mark.parametrize(
    ("from_bucket", "to_bucket", "qty"),
    [
        ("on_hand", "on_hand", 1),
        ("in_transit", "on_hand", 1),  # only transfers change in_transit
        ("on_hand", "in_transit", 1),
        ("written_off", "on_hand", 1),
        ("on_hand", "damaged", 0),
    ],
)
async def test_move_units_refuses_what_is_no_move_before_calling_redis(
    store: RedisStockStore, stocked: Stocked, sku: str, from_bucket: str, to_bucket: str, qty: int
) -> None:
    await stocked(sku, 5)
    await unchanged_after(store, move(store, sku, qty, from_bucket, to_bucket), Unprocessable)
