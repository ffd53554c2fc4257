"""Ledger helpers shared by the ledger writer and worker tests: a store run through every kind of
event, the outbox read back as ledger events, and a namespace's ledger rows to compare."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.engine import Engine

from stocksync.domain.model import Line, Location, State
from stocksync.ledger.tables import (
    LedgerLocation,
    LedgerReservation,
    Movement,
    ReservationTransition,
)
from stocksync.store.outbox import OutboxEvent, decode_event
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import Stocked, server_ms, wait_for_state

TABLES = {
    "movements": cast(Table, Movement.__table__),  # type: ignore[attr-defined]
    "reservations": cast(Table, LedgerReservation.__table__),  # type: ignore[attr-defined]
    "transitions": cast(Table, ReservationTransition.__table__),  # type: ignore[attr-defined]
    "locations": cast(Table, LedgerLocation.__table__),  # type: ignore[attr-defined]
}
# Columns that differ between two equal ledgers: surrogate keys and the time of writing.
VOLATILE = {"id", "recorded_at"}
CHURN = 6
FINAL_STATES = {
    "r1": State.FULFILLED,
    "r2": State.RELEASED,
    "r3": State.CONFIRMED,
    "r4": State.HELD,
    "r5": State.EXPIRED,
}


async def drive(store: RedisStockStore, stocked: Stocked, sku: str, sku2: str) -> None:
    """Every kind of event: counts, holds and each transition, a sale that flags holds at
    risk, a stale count and a stale adjustment, an expiry and a warehouse location."""
    await stocked(sku, 10, "store-a")
    await stocked(sku2, 5, "store-b")
    await store.upsert_location(
        Location("wh-1", "Warehouse 1", "warehouse", None, None, False, True)
    )
    two_lines = [Line(sku, "store-a", 2), Line(sku2, "store-b", 1)]
    await store.reserve("r1", "web", two_lines, 600, customer_ref="crm-1")
    await store.confirm("r1", pickup_seconds=3600)
    await store.ready("r1")
    await store.fulfill("r1")
    await store.reserve("r2", "app", [Line(sku, "store-a", 3)], 600)
    await store.release("r2")
    await store.reserve("r3", "pos", [Line(sku, "store-a", 4)], 600)
    await store.extend("r3", 1200)
    await store.reserve("r4", "chat", [Line(sku, "store-a", 3)], 600)
    sale = await store.adjust(
        sku, "store-a", -8, reason="sale", source="pos", source_event_id="till-1"
    )
    assert sale.at_risk_reservations == 2
    await store.confirm("r3")
    past = await server_ms(store) - 60_000
    stale = await store.set_count(sku, "store-a", 50, as_of_ms=past, source_event_id="c-old")
    assert not stale.applied
    damage = await store.adjust(
        sku2,
        "store-b",
        -1,
        reason="damage",
        source="wms",
        source_event_id="d-1",
        occurred_at_ms=past,
    )
    assert not damage.applied
    await store.reserve("r5", "web", [Line(sku2, "store-b", 1)], 1)
    await wait_for_state(store, "r5", State.EXPIRED)
    await churn(store, stocked, sku + "-c", sku + "-d")


async def churn(store: RedisStockStore, stocked: Stocked, sku: str, sku2: str) -> None:
    """Transitions back to back, so that several share a millisecond (their order is then
    only known from ``seq``): extend before and after confirm, ready, fulfil or release."""
    await stocked(sku, 100, "store-a")
    await stocked(sku2, 100, "store-b")
    for i in range(CHURN):
        reservation_id = f"c{i}"
        await store.reserve(
            reservation_id, "web", [Line(sku, "store-a", 1), Line(sku2, "store-b", 2)], 600
        )
        if i % 2:
            await store.extend(reservation_id, 900)
        await store.confirm(reservation_id, pickup_seconds=100 if i % 3 else None)
        if i % 4 == 0:
            await store.extend(reservation_id, 300)
        if i % 5:
            await store.ready(reservation_id)
        if i % 3 == 0:
            await store.fulfill(reservation_id)
        elif i % 3 == 1:
            await store.release(reservation_id)


async def outbox_events(store: RedisStockStore, namespace: str) -> list[OutboxEvent]:
    raw = cast("list[tuple[str, dict[str, str]]]", await store.client.xrange(store.keys.outbox))
    return [decode_event(namespace, stream_id, fields) for stream_id, fields in raw]


def dump(engine: Engine, namespace: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every ledger row of ``namespace``, sorted, without volatile columns or the namespace."""
    out = {}
    with engine.connect() as conn:
        for name, table in TABLES.items():
            rows = conn.execute(select(table).where(table.c.namespace == namespace)).mappings()
            out[name] = sorted(
                tuple(
                    str(v).split("/", 1)[1] if k == "event_id" else v
                    for k, v in row.items()
                    if k not in VOLATILE and k != "namespace"
                )
                for row in rows
            )
    return out


def renamed(events: list[OutboxEvent], namespace: str) -> list[OutboxEvent]:
    return [decode_event(namespace, e.stream_id, stream_fields(e)) for e in events]


def stream_fields(e: OutboxEvent) -> dict[str, str]:
    header = {"kind": e.kind, "sku": e.sku, "loc": e.location_id, "seq": str(e.seq)}
    return {**header, "at": str(e.at_ms), **e.fields}
