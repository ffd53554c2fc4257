"""Incoming supply against a real Redis: set and remove it, and receipts (adjustments, bulk
rows) that name it consume it; refusals leave every key as it was."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from stocksync.domain.errors import (
    IdempotencyConflict,
    NotFound,
    StockRegressed,
    StockSyncError,
    TooManyArrivals,
)
from stocksync.domain.model import Arrival, ArrivalKind, event_fingerprint
from stocksync.domain.transfers import MAX_ARRIVALS
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.stock_changes import StockRowResult
from tests.support.keyspace import snapshot
from tests.support.store import Stocked, add_location, outbox, server_ms, wait_for_server_ms_after

LOC = "store-a"
MONDAY_MS, THURSDAY_MS = 1_900_000_000_000, 1_900_259_200_000


async def unchanged(
    store: RedisStockStore, refused: Callable[[], Awaitable[Any]], error: type[StockSyncError]
) -> None:
    """Run a call that must be refused with ``error``; every key stays as it was."""
    before = await snapshot(store.client, store.settings.namespace)
    with pytest.raises(error):
        await refused()
    assert await snapshot(store.client, store.settings.namespace) == before


async def receipt(
    store: RedisStockStore, sku: str, delta: int, event_id: str, supply_id: str | None = "po-1"
) -> bool:
    result = await store.adjust(
        sku,
        LOC,
        delta,
        reason="receipt",
        source="wms",
        source_event_id=event_id,
        supply_id=supply_id,
    )
    return result.applied


async def test_set_incoming_adds_an_arrival_that_counts_only_by_its_time(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 2)
    arrival = await store.set_incoming(sku, LOC, "po-1", 5, THURSDAY_MS)

    assert arrival == Arrival(ArrivalKind.SUPPLY, "po-1", 5, THURSDAY_MS)
    position = await store.position(sku, LOC)
    assert position.arrivals == (arrival,)
    assert (position.incoming, position.available, position.on_hand) == (5, 2, 2)
    assert position.available_by(MONDAY_MS) == 2
    assert position.available_by(THURSDAY_MS) == 7
    assert position.next_arrival() == arrival
    event = (await outbox(store, sku))[-1]
    assert (event["kind"], event["supply"], event["qty"], event["exp"], event["prev"]) == (
        "incoming_set",
        "po-1",
        "5",
        str(THURSDAY_MS),
        "0",
    )
    assert "d_on_hand" not in event


async def test_set_incoming_replaces_it_and_the_same_again_changes_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 0)
    await store.set_incoming(sku, LOC, "po-1", 5, THURSDAY_MS)
    await store.set_incoming(sku, LOC, "po-1", 8, MONDAY_MS)
    before = await snapshot(store.client, store.settings.namespace)
    await store.set_incoming(sku, LOC, "po-1", 8, MONDAY_MS)
    assert await snapshot(store.client, store.settings.namespace) == before
    assert (await store.position(sku, LOC)).arrivals == (
        Arrival(ArrivalKind.SUPPLY, "po-1", 8, MONDAY_MS),
    )
    event = (await outbox(store, sku))[-1]
    assert (event["qty"], event["prev"], event["exp"]) == ("8", "5", str(MONDAY_MS))


async def test_a_location_with_only_incoming_supply_is_among_the_skus_positions(
    store: RedisStockStore, sku: str
) -> None:
    await add_location(store, "store-new")
    await store.set_incoming(sku, "store-new", "po-1", 2, THURSDAY_MS)
    [(position, _)] = await store.positions(sku)
    assert (position.location_id, position.available_by(THURSDAY_MS)) == ("store-new", 2)


async def test_remove_incoming_takes_it_away_once(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 0)
    await store.set_incoming(sku, LOC, "po-1", 5, THURSDAY_MS)
    assert await store.remove_incoming(sku, LOC, "po-1")
    assert (await store.position(sku, LOC)).arrivals == ()
    assert not await store.client.exists(store.keys.arrivals(sku, LOC))
    event = (await outbox(store, sku))[-1]
    assert (event["kind"], event["supply"], event["qty"]) == ("incoming_removed", "po-1", "5")
    before = await snapshot(store.client, store.settings.namespace)
    assert not await store.remove_incoming(sku, LOC, "po-1")
    assert await snapshot(store.client, store.settings.namespace) == before


async def test_incoming_at_an_unknown_location_or_of_a_frozen_sku_is_refused(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1)
    await unchanged(store, lambda: store.set_incoming(sku, "ghost", "po-1", 1, 1), NotFound)
    await unchanged(store, lambda: store.remove_incoming(sku, "ghost", "po-1"), NotFound)
    await store.client.sadd(store.keys.regressed, sku)  # type: ignore[misc]
    await unchanged(store, lambda: store.set_incoming(sku, LOC, "po-1", 1, 1), StockRegressed)


async def test_a_position_has_at_most_max_arrivals(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 0)
    for i in range(MAX_ARRIVALS):
        await store.set_incoming(sku, LOC, f"po-{i}", 1, THURSDAY_MS)
    await unchanged(
        store, lambda: store.set_incoming(sku, LOC, "po-extra", 1, THURSDAY_MS), TooManyArrivals
    )
    await store.set_incoming(sku, LOC, "po-0", 3, THURSDAY_MS)  # replacing one still fits
    assert (await store.position(sku, LOC)).incoming == MAX_ARRIVALS + 2


async def test_a_receipt_naming_a_supply_consumes_it_up_to_what_arrived(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1)
    await store.set_incoming(sku, LOC, "po-1", 5, THURSDAY_MS)

    assert await receipt(store, sku, 3, "g1")
    assert (await store.position(sku, LOC)).arrivals == (
        Arrival(ArrivalKind.SUPPLY, "po-1", 2, THURSDAY_MS),
    )
    assert await receipt(store, sku, 4, "g2")  # more than is left: all of it, then gone
    position = await store.position(sku, LOC)
    assert (position.on_hand, position.arrivals) == (8, ())
    consumed = [
        (e["qty"], e["left"], e["by"], e["supply"])
        for e in await outbox(store, sku)
        if e["kind"] == "incoming_consumed"
    ]
    assert consumed == [("3", "2", "adjust", "po-1"), ("2", "0", "adjust", "po-1")]


async def test_a_replayed_receipt_consumes_nothing_more(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 0)
    await store.set_incoming(sku, LOC, "po-1", 5, THURSDAY_MS)
    await receipt(store, sku, 3, "g1")
    before = await snapshot(store.client, store.settings.namespace)
    assert await receipt(store, sku, 3, "g1")
    assert await snapshot(store.client, store.settings.namespace) == before
    await unchanged(
        store, lambda: receipt(store, sku, 3, "g1", supply_id=None), IdempotencyConflict
    )
    await unchanged(
        store, lambda: receipt(store, sku, 3, "g1", supply_id="po-2"), IdempotencyConflict
    )


async def test_a_delta_without_supply_keeps_the_fingerprint_it_always_had(
    store: RedisStockStore,
) -> None:
    call = store.adjust_call(
        "S", LOC, -2, reason="sale", source="pos", source_event_id="e1", occurred_at_ms=7
    )
    assert call.args[5] == event_fingerprint("adjust", "S", LOC, -2, "sale", 7)
    assert call.row[-1] == ""
    named = store.adjust_call(
        "S", LOC, 2, reason="r", source="pos", source_event_id="e", supply_id="po"
    )
    assert named.args[5] == event_fingerprint("adjust", "S", LOC, 2, "r", None, "po")


async def test_only_an_applied_positive_delta_consumes(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await store.set_incoming(sku, LOC, "po-1", 5, THURSDAY_MS)
    assert await receipt(store, sku, -2, "sale-1")
    counted_at = await server_ms(store)
    await wait_for_server_ms_after(store, counted_at)
    await store.set_count(sku, LOC, 9, as_of_ms=counted_at)
    stale = await store.adjust(
        sku,
        LOC,
        3,
        reason="receipt",
        source="wms",
        source_event_id="late",
        occurred_at_ms=counted_at - 1,  # already in the count: recorded, not applied
        supply_id="po-1",
    )
    assert not stale.applied
    assert (await store.position(sku, LOC)).incoming == 5
    assert not [e for e in await outbox(store, sku) if e["kind"] == "incoming_consumed"]


async def test_bulk_rows_naming_a_supply_consume_it(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 0)
    await store.set_incoming(sku, LOC, "po-1", 5, THURSDAY_MS)
    calls = [
        store.adjust_call(
            sku, LOC, 2, reason="receipt", source="wms", source_event_id=f"r{i}", supply_id="po-1"
        )
        for i in range(2)
    ]
    calls.append(store.count_call(sku, LOC, 4, source="wms", source_event_id="c1"))
    results = await store.stock_changes(calls)
    assert [r.outcome for r in results if isinstance(r, StockRowResult)] == ["applied"] * 3
    position = await store.position(sku, LOC)
    assert (position.on_hand, position.incoming) == (4, 1)
    again = await store.stock_changes(calls[:2])
    assert [r.outcome for r in again if isinstance(r, StockRowResult)] == ["duplicate"] * 2
    assert (await store.position(sku, LOC)).incoming == 1
