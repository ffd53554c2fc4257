"""return_stock.lua against a real Redis: linked and unlinked returns, the fulfilled units as
the bound across partial returns, the ledger's record of a pruned reservation, refusals that
change nothing, and a real race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from stocksync.config import Settings
from stocksync.domain.errors import (
    CrossDomain,
    IdempotencyConflict,
    NotFound,
    NotFulfilled,
    ReturnExceedsFulfilled,
    ReturnWindowClosed,
    StockRegressed,
    Unprocessable,
)
from stocksync.domain.model import Disposition, Line, Location, Position
from stocksync.domain.returns import ArchivedSale, ReturnLine, StockReturn
from stocksync.store.keys import ledger_namespace
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.returns import ArchiveLookup
from tests.support.keyspace import namespace_keys
from tests.support.store import Stocked, outbox, server_ms, wait_for_server_ms_after

A, B = "store-a", "store-b"
RESTOCK, INSPECT, DAMAGED = Disposition.RESTOCK, Disposition.INSPECT, Disposition.DAMAGED


async def sold(store: RedisStockStore, stocked: Stocked, sku: str, qty: int = 3) -> None:
    """Reservation ``sale`` of ``qty`` units of ``sku`` at store-a, fulfilled; store-b exists."""
    await stocked(sku, 10)
    await stocked(sku, 0, B)
    await store.reserve("sale", "web", [Line(sku, A, qty)], 600)
    await store.fulfill("sale")


def line(sku: str, qty: int, disposition: Disposition = RESTOCK, loc: str = A) -> ReturnLine:
    return ReturnLine(sku, loc, qty, disposition)


async def give_back(
    store: RedisStockStore,
    return_id: str,
    *lines: ReturnLine,
    reservation_id: str | None = "sale",
    archive: ArchiveLookup | None = None,
) -> StockReturn:
    return await store.record_return(
        return_id, lines, reservation_id=reservation_id, archive=archive
    )


async def unchanged_after(store: RedisStockStore, call: Any, error: type[Exception]) -> Any:
    """``call`` raises ``error`` and leaves every key of the namespace as it was."""
    before = await namespace_keys(store.client, store.settings.namespace)
    with pytest.raises(error) as refused:
        await call
    assert await namespace_keys(store.client, store.settings.namespace) == before
    return refused.value


def archived(sale: ArchivedSale) -> ArchiveLookup:
    """A ledger lookup that finds ``sale`` (among the namespaces it is asked about)."""

    async def lookup(namespaces: Sequence[str]) -> ArchivedSale | None:
        return sale if sale.ledger_namespace in namespaces else None

    return lookup


async def test_record_return_puts_each_line_into_its_disposition_bucket(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await sold(store, stocked, sku, 6)
    await stocked(sku, 0, "store-c")
    recorded = await give_back(
        store,
        "ret-1",
        line(sku, 3, DAMAGED, "store-c"),
        line(sku, 1, RESTOCK),
        line(sku, 2, INSPECT, B),
    )
    assert (recorded.return_id, recorded.reservation_id, recorded.replayed) == (
        "ret-1",
        "sale",
        False,
    )
    assert recorded.lines == [
        line(sku, 1),
        line(sku, 2, INSPECT, B),
        line(sku, 3, DAMAGED, "store-c"),
    ]
    assert await store.position(sku, A) == Position(sku, A, 5, 0, 0)
    assert await store.position(sku, B) == Position(sku, B, 0, 0, 0, quality_control=2)
    assert await store.position(sku, "store-c") == Position(sku, "store-c", 0, 0, 0, damaged=3)
    assert await store.get_return("ret-1") == recorded


async def test_record_return_emits_returned_per_line_with_its_buckets(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await sold(store, stocked, sku)
    await give_back(store, "ret-1", line(sku, 1), line(sku, 2, INSPECT, B))
    restocked, inspected = (await outbox(store, sku))[-2:]
    common = {"kind": "returned", "ret": "ret-1", "res": "sale", "src": "api", "d_reserved": "0"}
    assert {k: restocked[k] for k in common} == common
    assert {k: inspected[k] for k in common} == common
    assert (restocked["loc"], restocked["disp"], restocked["qty"]) == (A, "restock", "1")
    assert (restocked["d_on_hand"], restocked["on_hand"]) == ("1", "8")
    assert "d_quality_control" not in restocked
    assert (inspected["loc"], inspected["disp"], inspected["d_on_hand"]) == (B, "inspect", "0")
    assert (inspected["d_quality_control"], inspected["quality_control"]) == ("2", "2")
    for event in (restocked, inspected):
        assert {"on_hand", "reserved", "damaged", "quality_control", "in_transit"} <= set(event)


async def test_a_restocked_return_is_a_delta_for_a_count_taken_before_it(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await sold(store, stocked, sku)
    counted_at = await server_ms(store)
    await wait_for_server_ms_after(store, counted_at)
    await give_back(store, "ret-1", line(sku, 2))
    await store.set_count(sku, A, 7, as_of_ms=counted_at)  # counted before the return came
    assert (await store.position(sku, A)).on_hand == 9


async def test_reservation_shows_its_returned_units_and_return_ids(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await sold(store, stocked, sku)
    assert (await store.get_reservation("sale")).returned_units == {}
    await give_back(store, "ret-1", line(sku, 1))
    await give_back(store, "ret-2", line(sku, 1, DAMAGED, B))
    reservation = await store.get_reservation("sale")
    assert (reservation.returned_units, reservation.return_ids) == ({sku: 2}, ("ret-1", "ret-2"))
    assert await store.returned_units("sale", "default") == ({sku: 2}, ("ret-1", "ret-2"))


async def test_record_return_never_exceeds_the_fulfilled_units_across_partial_returns(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await sold(store, stocked, sku, 3)
    await give_back(store, "ret-1", line(sku, 2))
    refused = await unchanged_after(
        store,
        give_back(store, "ret-2", line(sku, 1), line(sku, 1, INSPECT, B)),
        ReturnExceedsFulfilled,
    )
    assert refused.extra == {"sku": sku, "fulfilled": 3, "returned": 2, "requested": 2}
    await give_back(store, "ret-3", line(sku, 1, INSPECT, B))  # the last unit
    await unchanged_after(store, give_back(store, "ret-4", line(sku, 1)), ReturnExceedsFulfilled)
    other = await unchanged_after(
        store, give_back(store, "ret-5", line("OTHER-SKU", 1)), ReturnExceedsFulfilled
    )
    assert other.extra == {"sku": "OTHER-SKU", "fulfilled": 0, "returned": 0, "requested": 1}


@pytest.mark.parametrize("end", ["held", "confirmed", "released"])
async def test_record_return_of_a_reservation_not_fulfilled_changes_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str, end: str
) -> None:
    await stocked(sku, 5)
    await store.reserve("sale", "web", [Line(sku, A, 2)], 600)
    if end == "confirmed":
        await store.confirm("sale")
    if end == "released":
        await store.release("sale")
    refused = await unchanged_after(store, give_back(store, "ret-1", line(sku, 1)), NotFulfilled)
    assert refused.extra == {"state": end}


async def test_record_return_refusals_for_unknown_things_change_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await sold(store, stocked, sku)
    await unchanged_after(
        store, give_back(store, "ret-1", line(sku, 1), reservation_id="nothing"), NotFound
    )
    await unchanged_after(store, give_back(store, "ret-1", line(sku, 1, loc="store-x")), NotFound)
    unlinked = give_back(store, "ret-1", line(sku, 1, loc="store-x"), reservation_id=None)
    await unchanged_after(store, unlinked, NotFound)
    await store.client.sadd(store.keys.regressed, sku)  # type: ignore[misc]
    await unchanged_after(store, give_back(store, "ret-1", line(sku, 1)), StockRegressed)


async def test_record_return_refuses_a_caller_without_access_to_the_reservation(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await store.reserve("sale", "web", [Line(sku, A, 2)], 600, key_id="owner")
    await store.fulfill("sale")
    stranger = store.record_return("ret-1", [line(sku, 1)], reservation_id="sale", access="k2 ")
    await unchanged_after(store, stranger, NotFound)
    other_store = store.record_return(
        "ret-1", [line(sku, 1)], reservation_id="sale", access="k2 store-b"
    )
    await unchanged_after(store, other_store, NotFound)
    staff = await store.record_return(
        "ret-1", [line(sku, 1)], reservation_id="sale", access="k3 store-a"
    )
    owner = await store.record_return(
        "ret-2", [line(sku, 1)], reservation_id="sale", access="owner "
    )
    assert (staff.replayed, owner.replayed) == (False, False)


async def test_record_return_retry_replays_and_other_body_is_a_conflict(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await sold(store, stocked, sku)
    first = await give_back(store, "ret-1", line(sku, 1), line(sku, 1, INSPECT, B))
    before = await namespace_keys(store.client, store.settings.namespace)
    again = await give_back(store, "ret-1", line(sku, 1, INSPECT, B), line(sku, 1))  # reordered
    assert again.replayed
    assert again == StockReturn(
        first.return_id, first.reservation_id, first.lines, first.created_at_ms, replayed=True
    )
    assert await namespace_keys(store.client, store.settings.namespace) == before
    for other in (
        give_back(store, "ret-1", line(sku, 2)),
        give_back(store, "ret-1", line(sku, 1), line(sku, 1, DAMAGED, B)),
        give_back(store, "ret-1", line(sku, 1), line(sku, 1, INSPECT, B), reservation_id=None),
    ):
        await unchanged_after(store, other, IdempotencyConflict)


async def test_record_return_names_each_position_once(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await sold(store, stocked, sku)
    twice = give_back(store, "ret-1", line(sku, 1), line(sku, 1, INSPECT))
    await unchanged_after(store, twice, Unprocessable)
    await unchanged_after(store, give_back(store, "ret-1"), Unprocessable)


async def test_an_unlinked_return_is_a_till_return_in_one_domain(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1)
    recorded = await give_back(store, "till-1", line(sku, 2), reservation_id=None)
    assert (recorded.reservation_id, (await store.position(sku, A)).on_hand) == (None, 3)
    event = (await outbox(store, sku))[-1]
    assert (event["kind"], event["ret"], "res" in event) == ("returned", "till-1", False)
    await store.upsert_location(Location("store-n", "North", "store", domain="north"))
    spans = give_back(
        store, "till-2", line(sku, 1), line(sku, 1, loc="store-n"), reservation_id=None
    )
    await unchanged_after(store, spans, CrossDomain)


async def test_a_linked_return_stays_in_its_reservations_domain(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await sold(store, stocked, sku)
    await store.upsert_location(Location("store-n", "North", "store", domain="north"))
    refused = await unchanged_after(
        store, give_back(store, "ret-1", line(sku, 1, loc="store-n")), CrossDomain
    )
    assert refused.extra == {"domains": {"default": [], "north": ["store-n"]}}


async def test_a_pruned_reservation_is_returned_by_the_ledgers_record(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await sold(store, stocked, sku, 3)
    await give_back(store, "ret-1", line(sku, 1))
    fulfilled_at = dict((await store.get_reservation("sale")).history)["fulfilled"]
    await store.client.delete(store.keys.reservation("sale"))  # Redis's retention passed
    ledger = archived(
        ArchivedSale(store.settings.namespace, "fulfilled", [Line(sku, A, 3)], None, fulfilled_at)
    )
    await unchanged_after(store, give_back(store, "ret-2", line(sku, 1)), NotFound)  # no ledger
    # The claim is still in the directory: the script says the reservation is gone.
    recorded = await give_back(store, "ret-2", line(sku, 1, INSPECT, B), archive=ledger)
    assert recorded.lines == [line(sku, 1, INSPECT, B)]
    # Its returned units outlive it: one unit is left of the three.
    await unchanged_after(
        store, give_back(store, "ret-3", line(sku, 2), archive=ledger), ReturnExceedsFulfilled
    )
    # The claim swept too (stocksync.recovery.claims), in another process: the ledger's
    # namespace says which domain.
    await store.client.hdel(store.directory.reservation_domains, "sale")  # type: ignore[misc]
    fresh = RedisStockStore(store.client, store.settings)
    await give_back(fresh, "ret-3", line(sku, 1, DAMAGED), archive=ledger)
    assert await store.returned_units("sale", "default") == ({sku: 3}, ("ret-1", "ret-2", "ret-3"))


async def test_a_pruned_reservation_in_another_domain_is_found_by_its_ledger_namespace(
    store: RedisStockStore, sku: str
) -> None:
    north = Location("store-n", "North", "store", domain="north")
    await store.upsert_location(north)
    await store.set_count(sku, "store-n", 5)
    await store.reserve("sale", "web", [Line(sku, "store-n", 2)], 600)
    await store.fulfill("sale")
    await store.client.delete(store.keys_of("north").reservation("sale"))
    await store.client.hdel(store.directory.reservation_domains, "sale")  # type: ignore[misc]
    ns = ledger_namespace(store.settings.namespace, "north")
    ledger = archived(ArchivedSale(ns, "fulfilled", [Line(sku, "store-n", 2)], None, 1))
    fresh = RedisStockStore(
        store.client, store.settings.model_copy(update={"return_retention_seconds": 10**10})
    )
    recorded = await give_back(fresh, "ret-1", line(sku, 2, loc="store-n"), archive=ledger)
    assert recorded.reservation_id == "sale"
    assert (await store.position(sku, "store-n")).on_hand == 5


async def test_a_pruned_reservation_not_fulfilled_or_unknown_to_the_ledger_changes_nothing(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    ns = store.settings.namespace
    released = archived(ArchivedSale(ns, "released", [Line(sku, A, 2)], None, None))
    await store.client.hset(  # type: ignore[misc]
        store.directory.reservation_domains, "gone", "default|0"
    )
    await unchanged_after(
        store,
        give_back(store, "r1", line(sku, 1), reservation_id="gone", archive=released),
        NotFulfilled,
    )
    elsewhere = archived(ArchivedSale("another-namespace", "fulfilled", [Line(sku, A, 2)], None, 1))
    await unchanged_after(
        store,
        give_back(store, "r1", line(sku, 1), reservation_id="gone", archive=elsewhere),
        NotFound,
    )


async def test_a_reservation_fulfilled_longer_ago_than_the_return_retention_takes_no_return(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    retention = 60
    short = RedisStockStore(
        store.client, store.settings.model_copy(update={"return_retention_seconds": retention})
    )
    now = await server_ms(store)
    old = ArchivedSale(store.settings.namespace, "fulfilled", [Line(sku, A, 2)], None, now - 61_000)
    refused = await unchanged_after(
        short,
        give_back(short, "r1", line(sku, 1), reservation_id="old", archive=archived(old)),
        ReturnWindowClosed,
    )
    assert refused.extra == {"fulfilled_at_ms": now - 61_000}
    recent = ArchivedSale(store.settings.namespace, "fulfilled", [Line(sku, A, 2)], None, now)
    await give_back(short, "r1", line(sku, 1), reservation_id="old", archive=archived(recent))
    ttl = await store.client.ttl(store.keys.stock_return("r1"))
    assert 0 < ttl <= retention
    assert 0 < await store.client.ttl(store.keys.returned_units("old")) <= retention


@pytest.fixture
async def second_store(redis_url: str, namespace: str) -> AsyncIterator[RedisStockStore]:
    """The test's namespace through a client and connections of its own (another process)."""
    pool = BlockingConnectionPool.from_url(redis_url, max_connections=4, decode_responses=True)
    client = Redis(connection_pool=pool)
    yield RedisStockStore(client, Settings(namespace=namespace))
    await client.aclose()
    await pool.disconnect()


async def test_two_concurrent_returns_of_all_the_units_have_exactly_one_winner(
    store: RedisStockStore, second_store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await sold(store, stocked, sku, 3)
    gate = asyncio.Event()

    async def attempt(s: RedisStockStore, return_id: str, loc: str) -> StockReturn:
        await gate.wait()
        return await give_back(s, return_id, line(sku, 3, INSPECT, loc))

    tasks = [
        asyncio.create_task(attempt(store, "ret-a", A)),
        asyncio.create_task(attempt(second_store, "ret-b", B)),
    ]
    await asyncio.sleep(0)  # both at the gate
    gate.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    won = [o for o in outcomes if isinstance(o, StockReturn)]
    lost = [o for o in outcomes if isinstance(o, ReturnExceedsFulfilled)]
    assert (len(won), len(lost)) == (1, 1), outcomes
    qc = [(await store.position(sku, loc)).quality_control for loc in (A, B)]
    assert sorted(qc) == [0, 3]
    assert (await store.get_reservation("sale")).return_ids == (won[0].return_id,)
