"""sell.lua against a real Redis: a till sale and the hold it names, in one script call."""

from __future__ import annotations

import pytest

from stocksync.domain.errors import IdempotencyConflict, NotFound, StockRegressed
from stocksync.domain.model import Line, Position, State
from stocksync.store.recovery import RecoveryOps
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.stock_changes import SaleResult
from tests.support.store import Stocked, add_location, outbox, server_ms, wait_for_state

LOC = "store-a"


async def sell(
    store: RedisStockStore,
    sku: str,
    qty: int,
    event_id: str,
    reservation_id: str | None = None,
    occurred_at_ms: int | None = None,
) -> SaleResult:
    return await store.sell(
        sku,
        LOC,
        qty,
        source="pos",
        source_event_id=event_id,
        reservation_id=reservation_id,
        occurred_at_ms=occurred_at_ms,
    )


async def hold(store: RedisStockStore, sku: str, rid: str, qty: int, ttl: int = 600) -> None:
    await store.reserve(rid, "chat", [Line(sku, LOC, qty)], ttl_seconds=ttl)


async def test_sell_fulfils_the_active_hold_it_names(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await hold(store, sku, "pickup", 2)
    result = await sell(store, sku, 2, "till-1", "pickup")
    assert (result.fulfilled, result.repeated, result.replayed) == (True, False, False)
    assert (result.covered, result.applied) == (2, False)  # no unit beyond the hold
    assert result.position == Position(sku, LOC, 3, 0, 0)
    assert await store.position(sku, LOC) == result.position
    reservation = await store.get_reservation("pickup")
    assert reservation.state is State.FULFILLED
    events = await outbox(store, sku)
    assert [e["kind"] for e in events] == ["counted", "held", "fulfilled"]
    assert (events[-1]["res"], events[-1]["d_on_hand"], events[-1]["d_reserved"]) == (
        "pickup",
        "-2",
        "-2",
    )
    assert len(result.sale_events) == 1
    assert result.seq == int(events[-1]["seq"])


async def test_sell_beyond_the_hold_sells_the_excess_as_a_plain_sale(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await hold(store, sku, "pickup", 1)
    result = await sell(store, sku, 3, "till-2", "pickup")
    assert (result.fulfilled, result.covered, result.applied) == (True, 1, True)
    assert result.position == Position(sku, LOC, 2, 0, 0)
    fulfilled, adjusted = (await outbox(store, sku))[-2:]
    assert (fulfilled["kind"], fulfilled["d_on_hand"]) == ("fulfilled", "-1")
    assert (adjusted["kind"], adjusted["delta"], adjusted["reason"]) == ("adjusted", "-2", "sale")
    assert (adjusted["src"], adjusted["src_id"]) == ("pos", "till-2")
    assert result.seq == int(adjusted["seq"])


@pytest.mark.parametrize("ending", ["released", "expired"])
async def test_sell_naming_an_ended_hold_is_a_plain_sale(
    store: RedisStockStore, stocked: Stocked, sku: str, ending: str
) -> None:
    await stocked(sku, 5)
    if ending == "released":
        await hold(store, sku, "gone", 2)
        await store.release("gone")
    else:
        await hold(store, sku, "gone", 2, ttl=1)
        await wait_for_state(store, "gone", State.EXPIRED)  # a bounded poll on Redis time
    result = await sell(store, sku, 2, "till-3", "gone")
    assert (result.fulfilled, result.repeated, result.covered, result.applied) == (
        False,
        False,
        0,
        True,
    )
    assert result.sale_events == ()
    assert result.position == Position(sku, LOC, 3, 0, 0)
    assert (await store.get_reservation("gone")).state.value == ending
    assert (await outbox(store, sku))[-1]["kind"] == "adjusted"


async def test_sell_expires_a_due_hold_before_selling_instead_of_fulfilling_it(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await hold(store, sku, "due", 2)
    await store.extend("due", ttl_seconds=0)  # its deadline is now; nothing has reaped it
    result = await sell(store, sku, 1, "till-4", "due")
    assert (result.fulfilled, result.covered) == (False, 0)
    assert result.position == Position(sku, LOC, 4, 0, 0)
    assert [e["kind"] for e in await outbox(store, sku)][-2:] == ["expired", "adjusted"]
    assert (await store.get_reservation("due")).state is State.EXPIRED


async def test_sell_naming_an_unknown_reservation_or_none_is_a_plain_sale(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    unknown = await sell(store, sku, 1, "till-5", "never-held")
    plain = await sell(store, sku, 1, "till-6")
    assert (unknown.covered, unknown.applied, plain.covered, plain.applied) == (0, True, 0, True)
    assert plain.position == Position(sku, LOC, 3, 0, 0)


async def test_sell_naming_a_hold_of_another_line_is_a_plain_sale_and_keeps_the_hold(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    other = sku + "-other"
    await stocked(sku, 5)
    await stocked(other, 5)
    await store.reserve("elsewhere", "web", [Line(other, LOC, 1)], ttl_seconds=600)
    result = await sell(store, sku, 1, "till-7", "elsewhere")
    assert (result.fulfilled, result.covered) == (False, 0)
    assert result.position == Position(sku, LOC, 4, 0, 0)
    assert (await store.get_reservation("elsewhere")).state is State.HELD
    assert await store.position(other, LOC) == Position(other, LOC, 5, 1, 0)


async def test_sell_naming_a_fulfilled_hold_sells_only_the_units_beyond_it(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await hold(store, sku, "collected", 2)
    fulfilment = await store.fulfill("collected")  # collected before (say, through the API)
    result = await sell(store, sku, 3, "till-8", "collected")
    assert (result.fulfilled, result.repeated, result.covered, result.applied) == (
        False,
        True,
        2,
        True,
    )
    assert result.position == Position(sku, LOC, 2, 0, 0)  # 2 by the fulfilment, 1 by the sale
    assert result.sale_events == fulfilment.sale_events  # written through again: idempotent


async def test_sell_retry_replays_without_selling_again(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await hold(store, sku, "pickup", 1)
    first = await sell(store, sku, 2, "till-9", "pickup")
    again = await sell(store, sku, 2, "till-9", "pickup")
    assert again.replayed
    assert (again.fulfilled, again.covered, again.applied) == (True, 1, True)
    assert (again.position, again.seq, again.sale_events) == (
        first.position,
        first.seq,
        first.sale_events,
    )
    assert await store.position(sku, LOC) == Position(sku, LOC, 3, 0, 0)
    assert [e["kind"] for e in await outbox(store, sku)] == [
        "counted",
        "held",
        "fulfilled",
        "adjusted",
    ]


async def test_sell_replays_a_sale_applied_as_a_delta_before(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await store.adjust(sku, LOC, -2, reason="sale", source="pos", source_event_id="till-10")
    result = await sell(store, sku, 2, "till-10")
    assert result.replayed
    assert (await store.position(sku, LOC)).on_hand == 3


async def test_sell_same_event_id_different_body_conflicts(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await hold(store, sku, "pickup", 1)
    await sell(store, sku, 1, "till-11", "pickup")
    for qty, rid in ((2, "pickup"), (1, "another"), (1, None)):
        with pytest.raises(IdempotencyConflict):
            await sell(store, sku, qty, "till-11", rid)
    assert await store.position(sku, LOC) == Position(sku, LOC, 4, 0, 0)


async def test_sell_of_held_units_of_someone_else_is_never_refused(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 2)
    await hold(store, sku, "mine", 1)
    await hold(store, sku, "theirs", 1)
    result = await sell(store, sku, 2, "till-12", "mine")  # one unit beyond "mine"
    assert (result.fulfilled, result.at_risk_reservations) == (True, 1)
    assert result.position == Position(sku, LOC, 0, 1, 0)
    assert (await store.get_reservation("theirs")).at_risk
    assert [e["kind"] for e in await outbox(store, sku)][-3:] == [
        "adjusted",
        "at_risk",
        "oversell_risk",
    ]


async def test_sell_reported_before_the_newest_count_is_stale(
    store: RedisStockStore, sku: str
) -> None:
    await add_location(store)
    now = await server_ms(store)
    await store.set_count(sku, LOC, 5, as_of_ms=now - 1_000)
    await hold(store, sku, "pickup", 1)
    result = await sell(store, sku, 2, "till-13", "pickup", occurred_at_ms=now - 5_000)
    assert (result.fulfilled, result.applied) == (True, False)
    assert result.position == Position(sku, LOC, 5, 0, 0)  # the count already misses both
    assert [e["kind"] for e in await outbox(store, sku)][-2:] == ["fulfilled", "adjust_stale"]


async def test_sell_naming_a_hold_fulfilled_after_a_count_that_missed_it_gives_the_units_back(
    store: RedisStockStore, sku: str
) -> None:
    """Rung up at the till, counted by Square (the count misses the units and arrives first),
    then "Collected" pressed on the store page: the fulfilment took the units again. The sale
    says they left before the count, so they are given back once."""
    await add_location(store)
    now = await server_ms(store)
    await store.set_count(sku, LOC, 5, as_of_ms=now - 600_000)
    await hold(store, sku, "pickup", 2)
    await store.set_count(sku, LOC, 3, as_of_ms=now - 60_000)  # misses the 2 sold at -120 s
    await store.fulfill("pickup")  # pressed after the count was in: 3 -> 1
    assert (await store.position(sku, LOC)).on_hand == 1

    result = await sell(store, sku, 2, "till-14", "pickup", occurred_at_ms=now - 120_000)
    again = await sell(store, sku, 2, "till-14", "pickup", occurred_at_ms=now - 120_000)

    assert (result.repeated, result.covered, result.applied) == (True, 2, False)
    assert result.position == Position(sku, LOC, 3, 0, 0)
    assert again.replayed
    assert await store.position(sku, LOC) == result.position
    back = (await outbox(store, sku))[-1]
    assert (back["kind"], back["reason"], back["d_on_hand"]) == ("adjusted", "counted_twice", "2")
    await store.set_count(sku, LOC, 3, as_of_ms=now - 30_000)  # Square's count once more
    assert (await store.position(sku, LOC)).on_hand == 3


async def test_sell_naming_a_hold_fulfilled_before_a_count_that_still_had_it_takes_the_units(
    store: RedisStockStore, sku: str
) -> None:
    """ "Collected" pressed first, then a count taken before the till rang the sale up (it
    still has the units) replaced on_hand: the sale takes the units, once."""
    await add_location(store)
    now = await server_ms(store)
    await store.set_count(sku, LOC, 5, as_of_ms=now - 600_000)
    await hold(store, sku, "pickup", 1)
    await store.fulfill("pickup")  # 5 -> 4
    await store.set_count(sku, LOC, 5, as_of_ms=await server_ms(store))  # still has it
    assert (await store.position(sku, LOC)).on_hand == 5

    result = await sell(store, sku, 1, "till-15", "pickup")

    assert (result.repeated, result.covered) == (True, 1)
    assert result.position == Position(sku, LOC, 4, 0, 0)
    assert (await outbox(store, sku))[-1]["reason"] == "sale"


async def test_sell_naming_a_fulfilled_hold_moves_its_delta_to_the_sales_time(
    store: RedisStockStore, sku: str
) -> None:
    """Rung up at -120 s, "Collected" pressed now, and Square's count taken at -60 s arrives
    after the sale: the count misses the unit, and the fulfilment, now placed at the sale's
    time, is not added to it again."""
    await add_location(store)
    now = await server_ms(store)
    await store.set_count(sku, LOC, 5, as_of_ms=now - 600_000)
    await hold(store, sku, "pickup", 1)
    await store.fulfill("pickup")  # 5 -> 4

    result = await sell(store, sku, 1, "till-17", "pickup", occurred_at_ms=now - 120_000)
    await store.set_count(sku, LOC, 4, as_of_ms=now - 60_000)

    assert result.position == Position(sku, LOC, 4, 0, 0)
    assert (await store.position(sku, LOC)).on_hand == 4


@pytest.mark.parametrize("count_first", [False, True])
async def test_sell_naming_a_fulfilled_hold_leaves_its_units_gone_once_either_order(
    store: RedisStockStore, sku: str, count_first: bool
) -> None:
    """Collected on the store page and counted by Square (after the sale), in either order,
    before the sale reaches the engine: the unit is gone once."""
    await add_location(store)
    now = await server_ms(store)
    await store.set_count(sku, LOC, 5, as_of_ms=now - 600_000)
    await hold(store, sku, "pickup", 1)
    if not count_first:
        await store.fulfill("pickup")
    await store.set_count(sku, LOC, 4, as_of_ms=await server_ms(store))
    if count_first:
        await store.fulfill("pickup")

    result = await sell(store, sku, 1, "till-16", "pickup", occurred_at_ms=now - 120_000)

    assert result.position == Position(sku, LOC, 4, 0, 0)


async def test_sell_unknown_location_raises_not_found(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    with pytest.raises(NotFound):
        await store.sell(sku, "nowhere", 1, source="pos", source_event_id="till-14")
    assert [e["kind"] for e in await outbox(store, sku)] == ["counted"]


async def test_sell_of_a_regressed_sku_is_refused_like_other_writes(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    other = sku + "-frozen"
    await stocked(sku, 5)
    await stocked(other, 5)
    await store.reserve("two-lines", "web", [Line(sku, LOC, 1), Line(other, LOC, 1)], 600)
    assert await RecoveryOps(store).freeze_regressed({other: 10_000}) == [other]
    with pytest.raises(StockRegressed):  # the sale's own SKU
        await sell(store, other, 1, "till-15")
    with pytest.raises(StockRegressed):  # fulfilling would write the frozen line too
        await sell(store, sku, 1, "till-16", "two-lines")
    assert await store.position(sku, LOC) == Position(sku, LOC, 5, 1, 0)
    assert (await store.get_reservation("two-lines")).state is State.HELD
    assert [e["kind"] for e in await outbox(store, sku)][-1] == "held"
