"""The ledger folds ``moved`` events: a reservation's lines follow its moves, whatever order
or batches the events arrive in, and each position records its side of the move."""

from __future__ import annotations

import json
import random
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.engine import Engine

from stocksync.domain.model import Line
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.ledger.tables import LedgerReservation, Movement
from stocksync.store.outbox import OutboxEvent, decode_event
from stocksync.store.pickups import PickupOps
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import Stocked

RESERVATIONS = cast(Table, LedgerReservation.__table__)  # type: ignore[attr-defined]
MOVEMENTS = cast(Table, Movement.__table__)  # type: ignore[attr-defined]


async def events_of(store: RedisStockStore, namespace: str) -> list[OutboxEvent]:
    raw = cast("list[tuple[str, dict[str, str]]]", await store.client.xrange(store.keys.outbox))
    return [decode_event(namespace, sid, fields) for sid, fields in raw]


def row(engine: Engine, namespace: str, reservation_id: str) -> tuple[str, list[list[object]]]:
    t = RESERVATIONS
    with engine.connect() as conn:
        r = conn.execute(
            select(t).where(t.c.namespace == namespace, t.c.reservation_id == reservation_id)
        ).one()
    return r.state, json.loads(r.lines)


async def test_ledger_lines_follow_moves_in_any_order(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    other = sku + "-x"
    for loc in ("store-a", "store-b", "store-c"):
        await stocked(sku, 5, loc)
        await stocked(other, 5, loc)
    lines = [Line(sku, "store-a", 2), Line(other, "store-b", 1), Line(sku, "store-c", 1)]
    await store.reserve("r1", "chat", lines, 600, "crm-1")
    ops = PickupOps(store)
    await ops.move("r1", "store-a", "store-b")
    await ops.move("r1", "store-b", "store-c")
    await store.confirm("r1", pickup_seconds=3600)
    expected = [[sku, "store-c", 3], [other, "store-c", 1]]
    assert [
        [ln.sku, ln.location_id, ln.qty] for ln in (await store.get_reservation("r1")).lines
    ] == (sorted(expected))
    events = await events_of(store, namespace)
    ledger = SqlLedger(engine)
    ledger.record(events)
    assert row(engine, namespace, "r1") == ("confirmed", sorted(expected))
    rng = random.Random(7)
    for i in range(10):
        ns = f"{namespace}m{i}"
        shuffled = [decode_event(ns, e.stream_id, {**_header(e), **e.fields}) for e in events]
        rng.shuffle(shuffled)
        for start in range(0, len(shuffled), 3):
            ledger.record(shuffled[start : start + 3])
        assert row(engine, ns, "r1") == ("confirmed", sorted(expected)), i


async def test_ledger_records_both_sides_of_a_move(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    await stocked(sku, 1, "store-a")
    await stocked(sku, 4, "store-b")
    await store.reserve("r1", "chat", [Line(sku, "store-a", 1)], 600)
    await PickupOps(store).move("r1", "store-a", "store-b")
    await store.fulfill("r1")
    ledger = SqlLedger(engine)
    ledger.record(await events_of(store, namespace))
    m = MOVEMENTS
    with engine.connect() as conn:
        moves = conn.execute(
            select(m.c.location_id, m.c.d_reserved, m.c.reserved, m.c.reservation_id, m.c.details)
            .where(m.c.namespace == namespace, m.c.kind == "moved")
            .order_by(m.c.seq)
        ).all()
    assert [(r.location_id, r.d_reserved, r.reserved, r.reservation_id) for r in moves] == [
        ("store-a", -1, 0, "r1"),
        ("store-b", 1, 1, "r1"),
    ]
    assert json.loads(moves[0].details)["to"] == "store-b"
    positions = ledger.positions(namespace)
    assert positions[(sku, "store-a")][:2] == (1, 0)
    assert positions[(sku, "store-b")][:2] == (3, 0)
    assert row(engine, namespace, "r1") == ("fulfilled", [[sku, "store-b", 1]])


def _header(e: OutboxEvent) -> dict[str, str]:
    return {
        "kind": e.kind,
        "sku": e.sku,
        "loc": e.location_id,
        "seq": str(e.seq),
        "at": str(e.at_ms),
    }


def at_risk(engine: Engine, namespace: str, reservation_id: str) -> bool:
    t = RESERVATIONS
    with engine.connect() as conn:
        return bool(
            conn.execute(
                select(t.c.at_risk).where(
                    t.c.namespace == namespace, t.c.reservation_id == reservation_id
                )
            ).scalar_one()
        )


async def test_ledger_at_risk_follows_flags_and_moves_in_any_order(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    await stocked(sku, 1, "store-a")
    await stocked(sku, 5, "store-b")
    await store.reserve("hold-1", "chat", [Line(sku, "store-a", 1)], 600, "crm-1")
    await store.adjust(sku, "store-a", -1, reason="sale", source="pos", source_event_id="t1")
    flagged = await events_of(store, namespace)
    assert [e.kind for e in flagged][-2:] == ["at_risk", "oversell_risk"]
    ledger = SqlLedger(engine)
    ledger.record(flagged)
    assert at_risk(engine, namespace, "hold-1")
    await PickupOps(store).move("hold-1", "store-a", "store-b")
    assert not (await store.get_reservation("hold-1")).at_risk
    everything = await events_of(store, namespace)
    ledger.record(everything)
    assert not at_risk(engine, namespace, "hold-1")  # the move cleared it, as in Redis
    raw = cast("list[tuple[str, dict[str, str]]]", await store.client.xrange(store.keys.outbox))
    rng = random.Random(11)
    for i in range(5):  # the same events, shuffled, into a namespace of their own each
        ns = f"{namespace}x{i}"
        shuffled = [decode_event(ns, sid, fields) for sid, fields in raw]
        rng.shuffle(shuffled)
        ledger.record(shuffled[: len(shuffled) // 2])
        ledger.record(shuffled[len(shuffled) // 2 :])
        assert not at_risk(engine, ns, "hold-1")
