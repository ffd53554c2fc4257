"""The transfer scripts against a real Redis: ship, receive, cancel, list, and every refusal
leaving every key of the namespace as it was."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from stocksync.config import Settings
from stocksync.domain.errors import (
    CrossDomain,
    Forbidden,
    IdempotencyConflict,
    InsufficientStock,
    InsufficientUnits,
    InvalidTransition,
    NotFound,
    ReceiveExceedsShipped,
    StockRegressed,
    StockSyncError,
    TooManyArrivals,
    Unprocessable,
)
from stocksync.domain.model import (
    Arrival,
    ArrivalKind,
    Line,
    Location,
    ReserveResult,
    TransferState,
)
from stocksync.domain.transfers import MAX_ARRIVALS, Transfer, TransferLine
from stocksync.store.redis_store import RedisStockStore
from tests.support.keyspace import snapshot
from tests.support.store import Stocked, add_location, outbox, server_ms, wait_for_server_ms_after

WH, STORE = "wh-north", "store-b"
EXPECTED_MS = 1_900_000_000_000


@pytest.fixture
async def two_ends(store: RedisStockStore, stocked: Stocked, sku: str) -> None:
    """10 units of ``sku`` at the warehouse; the store exists without any."""
    await stocked(sku, 10, WH)
    await add_location(store, STORE)


async def unchanged(
    store: RedisStockStore, refused: Callable[[], Awaitable[Any]], error: type[StockSyncError]
) -> StockSyncError:
    """Run a call that must be refused with ``error``; every key stays as it was."""
    before = await snapshot(store.client, store.settings.namespace)
    with pytest.raises(error) as caught:
        await refused()
    assert await snapshot(store.client, store.settings.namespace) == before
    return caught.value


async def ship(store: RedisStockStore, sku: str, qty: int, tid: str = "t1", **kw: Any) -> Transfer:
    return await store.ship_transfer(tid, WH, STORE, [(sku, qty)], **kw)


@pytest.mark.usefixtures("two_ends")
async def test_ship_takes_units_from_source_on_hand_into_target_in_transit(
    store: RedisStockStore, sku: str
) -> None:
    transfer = await ship(store, sku, 4, expected_at_ms=EXPECTED_MS)

    assert (transfer.state, transfer.lines, transfer.replayed) == (
        TransferState.SHIPPED,
        [TransferLine(sku, 4, 0)],
        False,
    )
    assert (transfer.from_location_id, transfer.to_location_id) == (WH, STORE)
    assert transfer.expected_at_ms == EXPECTED_MS
    assert transfer.created_at_ms == transfer.updated_at_ms > 0
    source, target = await store.position(sku, WH), await store.position(sku, STORE)
    assert (source.on_hand, source.in_transit, source.arrivals) == (6, 0, ())
    assert (target.on_hand, target.in_transit, target.available) == (0, 4, 0)
    assert target.arrivals == (Arrival(ArrivalKind.TRANSFER, "t1", 4, EXPECTED_MS),)
    assert await store.get_transfer("t1") == transfer
    out, into = [e for e in await outbox(store, sku) if e["kind"] == "transfer_shipped"]
    assert (out["loc"], out["d_on_hand"], out["on_hand"], out["qty"]) == (WH, "-4", "6", "4")
    assert "d_in_transit" not in out
    assert (into["loc"], into["d_on_hand"], into["d_in_transit"], into["in_transit"]) == (
        STORE,
        "0",
        "4",
        "4",
    )
    for event in (out, into):
        assert (event["xfer"], event["from"], event["to"], event["exp"]) == (
            "t1",
            WH,
            STORE,
            str(EXPECTED_MS),
        )
        assert {"reserved", "damaged", "quality_control", "in_transit", "d_reserved"} <= set(event)


@pytest.mark.usefixtures("two_ends")
async def test_ship_again_with_the_same_body_replays_and_another_body_conflicts(
    store: RedisStockStore, sku: str
) -> None:
    first = await ship(store, sku, 4)
    again = await ship(store, sku, 4)
    assert again.replayed
    assert again == Transfer(**{**first.__dict__, "replayed": True})
    assert (await store.position(sku, WH)).on_hand == 6
    await unchanged(store, lambda: ship(store, sku, 5), IdempotencyConflict)
    await unchanged(store, lambda: ship(store, sku, 4, force=True), IdempotencyConflict)


@pytest.mark.usefixtures("two_ends")
async def test_ship_beyond_available_without_force_is_refused(
    store: RedisStockStore, sku: str
) -> None:
    await store.reserve("hold-1", "web", [Line(sku, WH, 7)], 600)
    error = await unchanged(store, lambda: ship(store, sku, 4), InsufficientStock)
    assert isinstance(error, InsufficientStock)
    assert [(s.sku, s.location_id, s.requested, s.available) for s in error.short_lines] == [
        (sku, WH, 4, 3)
    ]
    assert (await ship(store, sku, 3)).lines == [TransferLine(sku, 3, 0)]


@pytest.mark.usefixtures("two_ends")
async def test_force_ships_up_to_on_hand_and_flags_the_holds_left_short(
    store: RedisStockStore, sku: str
) -> None:
    await store.reserve("hold-old", "web", [Line(sku, WH, 3)], 600)
    await store.reserve("hold-new", "web", [Line(sku, WH, 4)], 600)
    await unchanged(store, lambda: ship(store, sku, 11, force=True), InsufficientUnits)

    transfer = await ship(store, sku, 5, force=True)

    assert transfer.at_risk_reservations == 1
    assert (await store.position(sku, WH)).on_hand == 5  # 7 reserved: 2 short
    assert (await store.get_reservation("hold-new")).at_risk
    assert not (await store.get_reservation("hold-old")).at_risk
    kinds = [e["kind"] for e in await outbox(store, sku)]
    assert kinds[-3:] == ["at_risk", "oversell_risk", "transfer_shipped"]


@pytest.mark.usefixtures("two_ends")
async def test_force_beyond_on_hand_names_the_bucket(store: RedisStockStore, sku: str) -> None:
    error = await unchanged(store, lambda: ship(store, sku, 11, force=True), InsufficientUnits)
    assert error.extra == {
        "bucket": "on_hand",
        "sku": sku,
        "location_id": WH,
        "requested": 11,
        "available": 10,
    }


@pytest.mark.usefixtures("two_ends")
async def test_ship_reaps_due_holds_before_it_reads_availability(
    store: RedisStockStore, sku: str
) -> None:
    held = await store.reserve("short-lived", "web", [Line(sku, WH, 10)], 1)
    assert held.reservation.expires_at_ms is not None
    await wait_for_server_ms_after(store, held.reservation.expires_at_ms)
    assert (await ship(store, sku, 10)).lines == [TransferLine(sku, 10, 0)]
    assert (await store.get_reservation("short-lived")).state.value == "expired"


@pytest.mark.usefixtures("two_ends")
async def test_ship_refuses_bad_locations_and_lines_changing_nothing(
    store: RedisStockStore, sku: str
) -> None:
    missing = await unchanged(
        store, lambda: store.ship_transfer("t1", WH, "ghost", [(sku, 1)]), NotFound
    )
    assert "ghost" in missing.detail
    await unchanged(store, lambda: store.ship_transfer("t1", WH, WH, [(sku, 1)]), Unprocessable)
    for lines in ([(sku, 1), (sku, 2)], [], [(sku, 0)], [(sku, 10_001)]):
        refused = partial(store.ship_transfer, "t1", WH, STORE, lines)
        await unchanged(store, refused, Unprocessable)


@pytest.mark.usefixtures("two_ends")
async def test_ship_refuses_a_position_that_has_all_its_arrivals(
    store: RedisStockStore, sku: str
) -> None:
    for i in range(MAX_ARRIVALS):
        await store.set_incoming(sku, STORE, f"po-{i}", 1, EXPECTED_MS)
    error = await unchanged(store, lambda: ship(store, sku, 1), TooManyArrivals)
    assert error.extra == {"sku": sku, "location_id": STORE, "limit": MAX_ARRIVALS}


@pytest.mark.usefixtures("two_ends")
async def test_ship_of_a_frozen_sku_is_refused(store: RedisStockStore, sku: str) -> None:
    await store.client.sadd(store.keys.regressed, sku)  # type: ignore[misc]
    await unchanged(store, lambda: ship(store, sku, 1), StockRegressed)


async def test_transfer_between_two_domains_is_refused(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5, WH)
    await store.upsert_location(Location("oslo-1", "Oslo", "store", domain="nordics"))
    error = await unchanged(
        store, lambda: store.ship_transfer("t1", WH, "oslo-1", [(sku, 1)]), CrossDomain
    )
    assert error.extra["domains"] == {"default": [WH], "nordics": ["oslo-1"]}
    await unchanged(
        store, lambda: store.ship_transfer("t1", "ghost", "oslo-1", [(sku, 1)]), NotFound
    )


async def test_a_transfer_in_another_domain_is_routed_by_its_id(
    store: RedisStockStore, sku: str
) -> None:
    for loc in ("oslo-1", "oslo-2"):
        await store.upsert_location(Location(loc, loc, "store", domain="nordics"))
    await store.set_count(sku, "oslo-1", 5)
    await store.ship_transfer("north-1", "oslo-1", "oslo-2", [(sku, 2)])

    other = RedisStockStore(store.client, store.settings)  # a process that never saw it
    received = await other.receive_transfer("north-1", [(sku, 2)])

    assert received.state is TransferState.RECEIVED
    assert (await other.position(sku, "oslo-2")).on_hand == 2
    await add_location(store, "store-x")
    await store.set_count(sku, "store-x", 5)
    await add_location(store, "store-y")
    await unchanged(
        other,
        lambda: other.ship_transfer("north-1", "store-x", "store-y", [(sku, 2)]),
        IdempotencyConflict,
    )


@pytest.mark.usefixtures("two_ends")
async def test_receive_puts_what_arrived_on_hand_and_reports_the_shortfall(
    store: RedisStockStore, sku: str, stocked: Stocked
) -> None:
    other = sku + "-b"
    await stocked(other, 3, WH)
    await store.ship_transfer("t1", WH, STORE, [(sku, 4), (other, 3)])

    transfer = await store.receive_transfer("t1", [(sku, 3)])

    assert transfer.state is TransferState.RECEIVED
    assert transfer.lines == [TransferLine(sku, 4, 3), TransferLine(other, 3, 0)]
    assert [transfer.shortfall(line) for line in transfer.lines] == [1, 3]
    target = await store.position(sku, STORE)
    assert (target.on_hand, target.in_transit, target.arrivals) == (3, 0, ())
    assert (await store.position(other, STORE)).on_hand == 0
    events = [e for e in await outbox(store, sku) if e["kind"].startswith("transfer_")]
    received, shortfall = events[-2:]
    assert (received["kind"], received["qty"], received["shipped"]) == (
        "transfer_received",
        "3",
        "4",
    )
    assert (received["d_on_hand"], received["d_in_transit"], received["on_hand"]) == (
        "3",
        "-4",
        "3",
    )
    assert (shortfall["kind"], shortfall["qty"], shortfall["d_on_hand"]) == (
        "transfer_shortfall",
        "1",
        "0",
    )
    assert "d_in_transit" not in shortfall
    nothing = [e for e in await outbox(store, other) if e["kind"] == "transfer_received"]
    assert (nothing[0]["qty"], nothing[0]["d_on_hand"]) == ("0", "0")


@pytest.mark.usefixtures("two_ends")
async def test_the_same_receipt_again_replays_and_any_other_is_refused(
    store: RedisStockStore, sku: str
) -> None:
    await ship(store, sku, 4)
    first = await store.receive_transfer("t1", [(sku, 4)], supply_id="po-7")
    again = await store.receive_transfer("t1", [(sku, 4)], supply_id="po-7")
    assert again.replayed
    assert again == Transfer(**{**first.__dict__, "replayed": True})
    await unchanged(store, lambda: store.receive_transfer("t1", [(sku, 3)]), InvalidTransition)
    await unchanged(store, lambda: store.receive_transfer("t1", [(sku, 4)]), InvalidTransition)
    await unchanged(store, lambda: store.cancel_transfer("t1"), InvalidTransition)
    assert (await store.position(sku, STORE)).on_hand == 4


@pytest.mark.usefixtures("two_ends")
async def test_receive_more_than_shipped_or_a_sku_not_shipped_is_refused(
    store: RedisStockStore, sku: str
) -> None:
    await ship(store, sku, 4)
    error = await unchanged(
        store, lambda: store.receive_transfer("t1", [(sku, 5)]), ReceiveExceedsShipped
    )
    assert error.extra == {"sku": sku, "shipped": 4, "requested": 5}
    await unchanged(
        store,
        lambda: store.receive_transfer("t1", [(sku, 1), ("NOT-SHIPPED", 1)]),
        ReceiveExceedsShipped,
    )
    await unchanged(store, lambda: store.receive_transfer("nope", [(sku, 1)]), NotFound)


@pytest.mark.usefixtures("two_ends")
async def test_cancel_returns_the_units_to_the_source(store: RedisStockStore, sku: str) -> None:
    await ship(store, sku, 4, expected_at_ms=EXPECTED_MS)

    cancelled = await store.cancel_transfer("t1")

    assert (cancelled.state, cancelled.replayed) == (TransferState.CANCELLED, False)
    assert (await store.position(sku, WH)).on_hand == 10
    target = await store.position(sku, STORE)
    assert (target.in_transit, target.arrivals) == (0, ())
    at_target, at_source = [
        e for e in await outbox(store, sku) if e["kind"] == "transfer_cancelled"
    ]
    assert (at_target["loc"], at_target["d_in_transit"], at_target["d_on_hand"]) == (
        STORE,
        "-4",
        "0",
    )
    assert (at_source["loc"], at_source["d_on_hand"], at_source["on_hand"]) == (WH, "4", "10")
    assert (await store.cancel_transfer("t1")).replayed
    await unchanged(store, lambda: store.receive_transfer("t1", [(sku, 4)]), InvalidTransition)
    assert (await store.position(sku, WH)).on_hand == 10


@pytest.mark.usefixtures("two_ends")
async def test_a_terminal_transfer_expires_after_the_retention(
    store: RedisStockStore, sku: str
) -> None:
    await ship(store, sku, 4)
    key = store.keys.transfer("t1")
    assert await store.client.ttl(key) == -1  # in transit: kept until it ends
    await store.cancel_transfer("t1")
    assert 0 < await store.client.ttl(key) <= store.settings.retention_seconds


@pytest.mark.usefixtures("two_ends")
async def test_a_key_must_be_bound_to_the_end_it_acts_at(store: RedisStockStore, sku: str) -> None:
    await ship(store, sku, 4)
    await unchanged(store, lambda: store.receive_transfer("t1", [(sku, 4)], access=WH), Forbidden)
    await unchanged(store, lambda: store.cancel_transfer("t1", access=STORE), Forbidden)
    await unchanged(store, lambda: store.cancel_transfer("t1", access="store-z"), NotFound)
    received = await store.receive_transfer("t1", [(sku, 4)], access=f"{STORE},store-z")
    assert received.state is TransferState.RECEIVED


@pytest.mark.usefixtures("two_ends")
async def test_a_receipt_naming_a_supply_consumes_it_at_each_position(
    store: RedisStockStore, sku: str, stocked: Stocked
) -> None:
    other = sku + "-b"
    await stocked(other, 3, WH)
    await store.set_incoming(sku, STORE, "po-7", 10, EXPECTED_MS)
    await store.set_incoming(other, STORE, "po-7", 2, EXPECTED_MS)
    await store.ship_transfer("t1", WH, STORE, [(sku, 4), (other, 3)])

    transfer = await store.receive_transfer("t1", [(sku, 4), (other, 3)], supply_id="po-7")

    assert transfer.supply_id == "po-7"
    assert (await store.position(sku, STORE)).arrivals == (
        Arrival(ArrivalKind.SUPPLY, "po-7", 6, EXPECTED_MS),
    )
    assert (await store.position(other, STORE)).arrivals == ()
    consumed = [
        (e["sku"], e["qty"], e["left"], e["by"])
        for e in await outbox(store)
        if e["kind"] == "incoming_consumed"
    ]
    assert consumed == [(sku, "4", "6", "transfer"), (other, "2", "0", "transfer")]


@pytest.mark.usefixtures("two_ends")
async def test_a_count_taken_before_the_shipment_keeps_the_shipped_units_out(
    store: RedisStockStore, sku: str
) -> None:
    counted_at = await server_ms(store)
    await wait_for_server_ms_after(store, counted_at)
    await ship(store, sku, 4)
    # the count of 10 was taken before 4 units left: they are not on the shelf any more
    result = await store.set_count(sku, WH, 10, as_of_ms=counted_at)
    assert result.applied
    assert result.position.on_hand == 6


@pytest.mark.usefixtures("two_ends")
async def test_list_transfers_by_location_state_and_direction_newest_first(
    store: RedisStockStore, sku: str
) -> None:
    await store.set_count(sku, STORE, 5)
    for tid in ("a", "b", "c"):
        await ship(store, sku, 1, tid)
        await wait_for_server_ms_after(store, (await store.get_transfer(tid)).created_at_ms)
    await store.ship_transfer("back", STORE, WH, [(sku, 2)])
    await store.receive_transfer("b", [(sku, 1)])

    def ids(found: list[Transfer]) -> list[str]:
        return [t.transfer_id for t in found]

    assert ids(await store.list_transfers(WH)) == ["back", "c", "b", "a"]
    assert ids(await store.list_transfers(STORE, direction="in")) == ["c", "b", "a"]
    assert ids(await store.list_transfers(STORE, direction="out")) == ["back"]
    shipped = await store.list_transfers(STORE, state=TransferState.SHIPPED, direction="in")
    assert ids(shipped) == ["c", "a"]
    assert ids(await store.list_transfers(WH, limit=2)) == ["back", "c"]
    with pytest.raises(NotFound):
        await store.list_transfers("ghost")


@pytest.mark.usefixtures("two_ends")
async def test_a_location_index_drops_entries_of_transfers_gone(
    store: RedisStockStore, sku: str
) -> None:
    index = store.keys.location_transfers(WH)
    long_ago = await server_ms(store) - store.settings.retention_seconds * 1000 - 1
    await store.client.zadd(index, {"gone": long_ago, "still-here": long_ago})
    await store.client.hset(store.keys.transfer("still-here"), "from", WH)  # type: ignore[misc]
    await ship(store, sku, 1)
    assert await store.client.zrange(index, 0, -1) == ["still-here", "t1"]


# -- races -------------------------------------------------------------------------------


@pytest.fixture
async def other_store(redis_url: str, namespace: str) -> AsyncIterator[RedisStockStore]:
    """The namespace through a client of its own: another process's calls."""
    pool = BlockingConnectionPool.from_url(redis_url, max_connections=4, decode_responses=True)
    client = Redis(connection_pool=pool)
    yield RedisStockStore(client, Settings(namespace=namespace))
    await client.aclose()
    await pool.disconnect()


async def race(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Start the calls together, behind one gate; their results or errors."""
    gate = asyncio.Event()

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        await gate.wait()
        return await call()

    tasks = [asyncio.create_task(one(call)) for call in calls]
    await asyncio.sleep(0)  # every task reaches the gate
    gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_two_transfers_of_the_last_units_ship_once(
    store: RedisStockStore, other_store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3, WH)
    await add_location(store, STORE)
    await add_location(store, "store-c")
    outcomes = await race(
        lambda: store.ship_transfer("x1", WH, STORE, [(sku, 3)]),
        lambda: other_store.ship_transfer("x2", WH, "store-c", [(sku, 3)]),
    )
    shipped = [o for o in outcomes if isinstance(o, Transfer)]
    refused = [o for o in outcomes if isinstance(o, InsufficientStock)]
    assert (len(shipped), len(refused)) == (1, 1), outcomes
    source = await store.position(sku, WH)
    assert (source.on_hand, source.reserved) == (0, 0)
    in_transit = [(await store.position(sku, loc)).in_transit for loc in (STORE, "store-c")]
    assert sorted(in_transit) == [0, 3]


async def test_a_transfer_racing_a_reservation_for_the_last_unit_has_one_winner(
    store: RedisStockStore, other_store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1, WH)
    await add_location(store, STORE)
    outcomes = await race(
        lambda: store.ship_transfer("x1", WH, STORE, [(sku, 1)]),
        lambda: other_store.reserve("hold-1", "web", [Line(sku, WH, 1)], 600),
    )
    won = [o for o in outcomes if isinstance(o, Transfer | ReserveResult)]
    lost = [o for o in outcomes if isinstance(o, InsufficientStock)]
    assert (len(won), len(lost)) == (1, 1), outcomes
    source = await store.position(sku, WH)
    assert source.on_hand - source.reserved == 0
    assert source.available == 0
    assert (await store.position(sku, STORE)).in_transit == (
        1 if isinstance(won[0], Transfer) else 0
    )
