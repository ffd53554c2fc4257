"""Moves and returns a source reports late (``occurred_at_ms``, the connectors'): their on_hand
side follows the as-of rule like a delta's, so a count of the same change, applied before or
after it, never counts it twice."""

from __future__ import annotations

import pytest

from stocksync.domain.errors import IdempotencyConflict
from stocksync.domain.model import Disposition, Position
from stocksync.domain.returns import MoveResult, ReturnLine
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import Stocked, outbox, server_ms

LOC = "store-a"
MINUTE_MS = 60_000


async def move(
    store: RedisStockStore, sku: str, qty: int, to_bucket: str, occurred_at_ms: int
) -> MoveResult:
    return await store.move_units(
        sku,
        LOC,
        qty,
        from_bucket="on_hand",
        to_bucket=to_bucket,
        reason="damaged",
        source="square",
        source_event_id="ADJ-1",
        occurred_at_ms=occurred_at_ms,
    )


async def restock(store: RedisStockStore, sku: str, qty: int, occurred_at_ms: int) -> None:
    line = ReturnLine(sku, LOC, qty, Disposition.RESTOCK)
    await store.record_return(
        "square:RET-1", [line], source="square", occurred_at_ms=occurred_at_ms
    )


def buckets(position: Position) -> tuple[int, int]:
    return position.on_hand, position.damaged


async def counted(store: RedisStockStore, stocked: Stocked, sku: str) -> int:
    """5 units of ``sku`` at the store, counted 20 minutes ago; returns the server time."""
    now = await server_ms(store)
    await stocked(sku + "-x", 0)  # the location (another SKU's count, not this one's)
    await store.set_count(sku, LOC, 5, as_of_ms=now - 20 * MINUTE_MS)
    return now


async def test_move_units_before_the_newest_count_moves_only_its_other_side(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    """Square's count after the damage (3 on hand) was applied first: the move adds the units
    to damaged and leaves on_hand to the count, even one the move could not have taken from."""
    now = await counted(store, stocked, sku)
    await store.set_count(sku, LOC, 0, as_of_ms=now - MINUTE_MS)
    result = await move(store, sku, 2, "damaged", now - 2 * MINUTE_MS)
    assert (result.applied, buckets(result.position)) == (True, (0, 2))
    [event] = [e for e in await outbox(store, sku) if e["kind"] == "stock_moved"]
    assert (event["d_on_hand"], event["d_damaged"]) == ("0", "2")
    assert event["occurred_at"] == str(now - 2 * MINUTE_MS)


async def test_move_units_written_off_before_the_newest_count_changes_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    now = await counted(store, stocked, sku)
    await store.set_count(sku, LOC, 3, as_of_ms=now - MINUTE_MS)
    result = await move(store, sku, 2, "written_off", now - 2 * MINUTE_MS)
    assert (result.applied, result.replayed, buckets(result.position)) == (False, False, (3, 0))
    again = await move(store, sku, 2, "written_off", now - 2 * MINUTE_MS)
    assert (again.applied, again.replayed) == (False, True)


async def test_move_units_is_a_delta_of_when_it_occurred_for_a_later_count(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    now = await counted(store, stocked, sku)
    await store.set_count(sku, LOC, 5, as_of_ms=now - 10 * MINUTE_MS)
    await move(store, sku, 2, "damaged", now - 5 * MINUTE_MS)
    assert buckets(await store.position(sku, LOC)) == (3, 2)
    await store.set_count(sku, LOC, 3, as_of_ms=now - 4 * MINUTE_MS)  # counted after it: 3
    assert buckets(await store.position(sku, LOC)) == (3, 2)
    await store.set_count(sku, LOC, 4, as_of_ms=now - 4 * MINUTE_MS + 1)  # another unit found
    assert buckets(await store.position(sku, LOC)) == (4, 2)


async def test_move_units_occurred_before_an_older_count_is_added_to_it(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    now = await counted(store, stocked, sku)
    await store.set_count(sku, LOC, 5, as_of_ms=now - 10 * MINUTE_MS)
    await move(store, sku, 2, "damaged", now - 5 * MINUTE_MS)
    # a count taken before the damage, arriving late, is not newer than the newest one
    await store.set_count(sku, LOC, 5, as_of_ms=now - 7 * MINUTE_MS)
    assert buckets(await store.position(sku, LOC)) == (3, 2)


async def test_restocked_return_before_the_newest_count_is_recorded_once(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    now = await counted(store, stocked, sku)
    await store.set_count(sku, LOC, 7, as_of_ms=now - MINUTE_MS)  # the count has the 2 back
    await restock(store, sku, 2, now - 2 * MINUTE_MS)
    assert (await store.position(sku, LOC)).on_hand == 7
    recorded = await store.get_return("square:RET-1")
    assert [(ln.qty, ln.disposition) for ln in recorded.lines] == [(2, Disposition.RESTOCK)]
    [event] = [e for e in await outbox(store, sku) if e["kind"] == "returned"]
    assert (event["qty"], event["d_on_hand"]) == ("2", "0")


async def test_restocked_return_is_a_delta_of_when_it_occurred_for_a_later_count(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    now = await counted(store, stocked, sku)
    await store.set_count(sku, LOC, 5, as_of_ms=now - 10 * MINUTE_MS)
    await restock(store, sku, 2, now - 5 * MINUTE_MS)
    assert (await store.position(sku, LOC)).on_hand == 7
    await store.set_count(sku, LOC, 7, as_of_ms=now - 4 * MINUTE_MS)  # the count has them
    assert (await store.position(sku, LOC)).on_hand == 7


async def test_inspected_return_before_the_newest_count_still_enters_quality_control(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    now = await counted(store, stocked, sku)
    await store.set_count(sku, LOC, 5, as_of_ms=now - MINUTE_MS)
    line = ReturnLine(sku, LOC, 2, Disposition.INSPECT)
    await store.record_return("r-qc", [line], source="square", occurred_at_ms=now - 2 * MINUTE_MS)
    position = await store.position(sku, LOC)
    assert (position.on_hand, position.quality_control) == (5, 2)


async def test_the_same_return_at_another_time_is_an_idempotency_conflict(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    now = await counted(store, stocked, sku)
    await restock(store, sku, 1, now - 2 * MINUTE_MS)
    before = await store.position(sku, LOC)
    with pytest.raises(IdempotencyConflict):
        await restock(store, sku, 1, now - 3 * MINUTE_MS)
    assert await store.position(sku, LOC) == before
