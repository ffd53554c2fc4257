"""A hold's order details (lines, fingerprint, customer, code, key) travel once per reservation,
on its first line's event; events written by the previous release (details on every line) are
still in flight after an upgrade and must fold into the same ledger rows."""

from __future__ import annotations

import dataclasses

from sqlalchemy.engine import Engine

from stocksync.domain.events import EventKind
from stocksync.domain.model import Line
from stocksync.ledger.history import reservation_record
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.store.outbox import OutboxEvent
from stocksync.store.redis_store import RedisStockStore
from tests.support.ledger import dump, outbox_events
from tests.support.store import Stocked

DETAILS = ("cref", "lines", "fp", "code", "key")


def as_previous_release(events: list[OutboxEvent], namespace: str) -> list[OutboxEvent]:
    """The same events as the previous release emitted them: every held event carries the
    first one's details. Re-namespaced, so both shapes can sit in one ledger."""
    details: dict[str, dict[str, str]] = {}
    for e in events:
        if e.kind == EventKind.HELD and "lines" in e.fields:
            details[e.fields["res"]] = {k: v for k, v in e.fields.items() if k in DETAILS}
    return [
        dataclasses.replace(
            e,
            namespace=namespace,
            fields={**e.fields, **details[e.fields["res"]]}
            if e.kind == EventKind.HELD
            else e.fields,
        )
        for e in events
    ]


async def test_held_events_carry_order_details_once(
    store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    for loc in ("store-a", "store-b", "store-c"):
        await stocked(sku, 5, loc)
    lines = [Line(sku, loc, 1) for loc in ("store-c", "store-a", "store-b")]
    await store.reserve("r1", "web", lines, 600, customer_ref="crm-1", key_id="k1")
    held = [e for e in await outbox_events(store, namespace) if e.kind == EventKind.HELD]
    assert [e.location_id for e in held] == ["store-a", "store-b", "store-c"]
    assert held[0].fields["cref"] == "crm-1"
    assert held[0].fields["key"] == "k1"
    assert held[0].fields["fp"]
    assert all(not set(DETAILS) & set(e.fields) for e in held[1:])


async def test_events_of_the_previous_release_fold_into_the_same_rows(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    for loc in ("store-a", "store-b"):
        await stocked(sku, 5, loc)
    lines = [Line(sku, "store-a", 2), Line(sku, "store-b", 1)]
    await store.reserve("r1", "chat", lines, 600, customer_ref="crm-9", key_id="k1")
    await store.confirm("r1")
    await store.reserve("r2", "web", [Line(sku, "store-b", 1)], 600)
    events = await outbox_events(store, namespace)
    previous = namespace + "-old"
    old = as_previous_release(events, previous)
    assert sum("lines" in e.fields for e in old) > sum("lines" in e.fields for e in events)

    ledger = SqlLedger(engine)
    ledger.record(old[: len(old) // 2])  # an upgrade mid-stream: old events, then new ones
    ledger.record(old[len(old) // 2 :])
    ledger.record(events)

    new_rows, old_rows = dump(engine, namespace), dump(engine, previous)
    assert new_rows["reservations"] == old_rows["reservations"]
    assert new_rows["transitions"] == old_rows["transitions"]
    for ns in (namespace, previous):
        record = reservation_record(engine, ns, "r1")
        assert record is not None
        row, _, code, key_id = record
        assert (row.customer_ref, row.state, key_id) == ("crm-9", "confirmed", "k1")
        assert code
        assert row.lines == f'[["{sku}", "store-a", 2], ["{sku}", "store-b", 1]]'
