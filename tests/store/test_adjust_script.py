"""adjust.lua against a real Redis: deltas, idempotency, the as-of rule and till sales."""

from __future__ import annotations

import pytest

from stocksync.domain.errors import IdempotencyConflict, NotFound
from stocksync.domain.model import Line, Position
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.stock_changes import StockRowResult
from tests.support.store import (
    Stocked,
    add_location,
    outbox,
    server_ms,
    wait_for_server_ms_after,
)


async def sale(store: RedisStockStore, sku: str, qty: int, event_id: str) -> Position:
    result = await store.adjust(
        sku, "store-a", -qty, reason="sale", source="pos", source_event_id=event_id
    )
    assert result.applied
    return result.position


async def test_adjust_applies_delta_and_emits_adjusted(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    result = await store.adjust(
        sku, "store-a", 3, reason="receipt", source="wms", source_event_id="g1"
    )
    assert result.applied
    assert not result.replayed
    assert result.position == Position(sku, "store-a", 8, 0, 0)
    assert await store.position(sku, "store-a") == result.position
    event = (await outbox(store, sku))[-1]
    assert event["kind"] == "adjusted"
    assert (event["delta"], event["reason"], event["src"], event["src_id"]) == (
        "3",
        "receipt",
        "wms",
        "g1",
    )
    assert (event["d_on_hand"], event["on_hand"], int(event["seq"])) == ("3", "8", result.seq)


async def test_adjust_retry_replays_without_reapplying(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    first = await store.adjust(
        sku, "store-a", -1, reason="sale", source="pos", source_event_id="e1"
    )
    again = await store.adjust(
        sku, "store-a", -1, reason="sale", source="pos", source_event_id="e1"
    )
    assert again.replayed
    assert again.applied
    assert (again.seq, again.position) == (first.seq, first.position)
    assert (await store.position(sku, "store-a")).on_hand == 4
    assert [e["kind"] for e in await outbox(store, sku)] == ["counted", "adjusted"]


async def test_adjust_same_event_id_different_body_conflicts(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await store.adjust(sku, "store-a", -1, reason="sale", source="pos", source_event_id="e1")
    with pytest.raises(IdempotencyConflict):
        await store.adjust(sku, "store-a", -2, reason="sale", source="pos", source_event_id="e1")
    with pytest.raises(IdempotencyConflict):
        await store.adjust(sku, "store-a", -1, reason="damage", source="pos", source_event_id="e1")
    assert (await store.position(sku, "store-a")).on_hand == 4


async def test_adjust_unknown_location_raises_not_found(store: RedisStockStore, sku: str) -> None:
    await add_location(store)
    with pytest.raises(NotFound):
        await store.adjust(sku, "nowhere", 1, reason="receipt", source="wms", source_event_id="g")
    assert not await store.client.exists(store.keys.position(sku, "nowhere"))
    assert await outbox(store, sku) == []


async def test_adjust_at_or_before_newest_count_is_stale(store: RedisStockStore, sku: str) -> None:
    await add_location(store)
    now = await server_ms(store)
    as_of = now - 10_000
    await store.set_count(sku, "store-a", 10, as_of_ms=as_of)
    for event_id, occurred in (("at", as_of), ("before", as_of - 5_000)):
        result = await store.adjust(
            sku,
            "store-a",
            -1,
            reason="sale",
            source="pos",
            source_event_id=event_id,
            occurred_at_ms=occurred,
        )
        assert not result.applied
        assert result.position.on_hand == 10
        event = (await outbox(store, sku))[-1]
        assert (event["kind"], event["src_id"], event["occurred_at"]) == (
            "adjust_stale",
            event_id,
            str(occurred),
        )
    retry = await store.adjust(
        sku, "store-a", -1, reason="sale", source="pos", source_event_id="at", occurred_at_ms=as_of
    )
    assert retry.replayed
    assert not retry.applied
    after = await store.adjust(
        sku,
        "store-a",
        -1,
        reason="sale",
        source="pos",
        source_event_id="after",
        occurred_at_ms=as_of + 1,
    )
    assert after.applied
    assert (await store.position(sku, "store-a")).on_hand == 9


async def test_adjust_right_after_a_count_is_applied(store: RedisStockStore, sku: str) -> None:
    # Regression: a sale reported in the same millisecond as a count (whose as_of defaults to
    # that millisecond) was taken as "already in the count" and silently dropped.
    await add_location(store)
    for i in range(50):
        await store.set_count(sku, "store-a", 5)
        result = await store.adjust(
            sku, "store-a", -1, reason="sale", source="pos", source_event_id=f"s{i}"
        )
        assert result.applied, f"sale {i} was dropped"
        assert result.position.on_hand == 4


async def test_adjust_till_sale_of_last_unit_goes_negative_and_flags_hold(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1)
    await store.reserve("r1", "app", [Line(sku, "store-a", 1)], ttl_seconds=600)
    result = await store.adjust(
        sku, "store-a", -1, reason="sale", source="pos", source_event_id="till-1"
    )
    assert result.applied
    assert result.position == Position(sku, "store-a", 0, 1, 0)
    assert result.position.available_raw == -1
    assert result.at_risk_reservations == 1
    assert (await store.get_reservation("r1")).at_risk
    kinds = [e["kind"] for e in await outbox(store, sku)]
    assert kinds[-3:] == ["adjusted", "at_risk", "oversell_risk"]


async def test_adjust_flags_holds_newest_first_until_shortfall_covered(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 4)
    # Created in this order, each in a later millisecond; ids sort the other way round so the
    # order can only come from the creation time.
    created = []
    for rid, qty in (("h-c", 1), ("h-b", 1), ("h-a", 2)):
        res = await store.reserve(rid, "web", [Line(sku, "store-a", qty)], ttl_seconds=600)
        created.append(res.reservation.created_at_ms)
        await wait_for_server_ms_after(store, res.reservation.created_at_ms)
    assert created == sorted(set(created))

    async def flags() -> dict[str, bool]:
        return {r: (await store.get_reservation(r)).at_risk for r in ("h-a", "h-b", "h-c")}

    first = await store.adjust(sku, "store-a", -2, reason="sale", source="pos", source_event_id="1")
    assert first.at_risk_reservations == 1  # the newest hold (2 units) covers a shortfall of 2
    assert await flags() == {"h-a": True, "h-b": False, "h-c": False}
    second = await store.adjust(
        sku, "store-a", -1, reason="sale", source="pos", source_event_id="2"
    )
    assert second.at_risk_reservations == 1  # shortfall 3: h-a (2) + h-b (1)
    assert await flags() == {"h-a": True, "h-b": True, "h-c": False}
    assert second.position.available_raw == -3
    risk = (await outbox(store, sku))[-1]
    assert (risk["kind"], risk["shortfall"], risk["flagged"]) == ("oversell_risk", "3", "1")


async def test_adjust_receipt_never_flags_holds(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1)
    await store.reserve("r1", "web", [Line(sku, "store-a", 1)], ttl_seconds=600)
    await sale(store, sku, 2, "s1")
    assert (await store.get_reservation("r1")).at_risk
    receipt = await store.adjust(
        sku, "store-a", 1, reason="receipt", source="w", source_event_id="g"
    )
    assert receipt.at_risk_reservations == 0
    assert receipt.position.available_raw == -1
    assert [e["kind"] for e in await outbox(store, sku)][-1] == "adjusted"


async def test_adjust_events_carry_increasing_per_sku_seq(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    other = sku + "-other"
    await stocked(sku, 10)
    await stocked(other, 10)
    seqs: dict[str, list[int]] = {sku: [], other: []}
    for i in range(5):
        for s in (sku, other):
            result = await store.adjust(
                s, "store-a", -1, reason="sale", source="pos", source_event_id=f"{s}-{i}"
            )
            seqs[s].append(result.seq)
    for s in (sku, other):
        events = await outbox(store, s)
        assert [int(e["seq"]) for e in events] == list(range(1, 7))
        assert seqs[s] == [2, 3, 4, 5, 6]
        assert (await store.position(s, "store-a")).on_hand == 5


async def test_adjust_flags_only_a_physical_shortfall_not_safety_stock(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 6, safety=2)
    await store.reserve("covered", "chat", [Line(sku, "store-a", 3)], ttl_seconds=600)
    first = await store.adjust(
        sku, "store-a", -3, reason="sale", source="pos", source_event_id="t1"
    )
    # 3 on hand, 3 reserved: availability is negative (safety stock) but every hold is covered
    assert first.position.available_raw == -2
    assert first.at_risk_reservations == 0
    assert not (await store.get_reservation("covered")).at_risk
    second = await store.adjust(
        sku, "store-a", -1, reason="sale", source="pos", source_event_id="t2"
    )
    assert second.at_risk_reservations == 1
    assert (await store.get_reservation("covered")).at_risk


async def test_stock_changes_batches_calls_and_reports_each_outcome(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    calls = [
        store.adjust_call(sku, "store-a", 3, reason="receipt", source="wms", source_event_id="r1"),
        store.adjust_call(sku, "store-a", 3, reason="receipt", source="wms", source_event_id="r1"),
        store.adjust_call(sku, "nowhere", 1, reason="receipt", source="wms", source_event_id="r2"),
        store.count_call(sku, "store-a", 20, source="wms", source_event_id="c1"),
    ]
    results = await store.stock_changes(calls)
    applied, replayed, refused, counted = results
    assert isinstance(applied, StockRowResult)
    assert isinstance(replayed, StockRowResult)
    assert isinstance(counted, StockRowResult)
    outcomes = (applied.outcome, replayed.outcome, counted.outcome)
    assert outcomes == ("applied", "duplicate", "applied")
    assert replayed.seq == applied.seq  # the original's event
    assert counted.seq == applied.seq + 1
    assert isinstance(refused, NotFound)
    assert "nowhere" in refused.detail
    assert (await store.position(sku, "store-a")).on_hand == 20
