"""SqlLedger against real Redis events and real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import random
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.engine import Engine

from stocksync.domain.model import Line, Location, State
from stocksync.ledger.fold import ms_to_datetime
from stocksync.ledger.tables import (
    LedgerLocation,
    LedgerReservation,
    Movement,
    ReservationTransition,
)
from stocksync.ledger.writer import OutboxEvent, SqlLedger, parse_event
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
    return [parse_event(namespace, stream_id, fields) for stream_id, fields in raw]


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
    return [parse_event(namespace, e.stream_id, stream_fields(e)) for e in events]


def stream_fields(e: OutboxEvent) -> dict[str, str]:
    header = {"kind": e.kind, "sku": e.sku, "loc": e.location_id, "seq": str(e.seq)}
    return {**header, "at": str(e.at_ms), **e.fields}


async def test_ledger_records_every_store_event(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    sku2 = sku + "-b"
    await drive(store, stocked, sku, sku2)
    events = await outbox_events(store, namespace)
    kinds = {e.kind for e in events}
    assert kinds >= {"held", "confirmed", "ready", "fulfilled", "released", "extended", "expired"}
    assert kinds >= {"counted", "adjusted", "oversell_risk", "count_stale", "adjust_stale"}
    assert "location_upserted" in kinds
    ledger = SqlLedger(engine)

    assert ledger.record(events) == sum(1 for e in events if e.sku)
    first = dump(engine, namespace)
    assert len(first["movements"]) == sum(1 for e in events if e.sku)

    # Reservations: the same state, lines, times, deadline and flags as Redis; one transition
    # row per state entered (the line events of one transition share it), plus extensions.
    with engine.connect() as conn:
        rows = {
            r.reservation_id: r
            for r in conn.execute(
                select(TABLES["reservations"]).where(
                    TABLES["reservations"].c.namespace == namespace
                )
            )
        }
        transitions = conn.execute(
            select(TABLES["transitions"]).where(TABLES["transitions"].c.namespace == namespace)
        ).all()
    assert set(rows) == set(FINAL_STATES) | {f"c{i}" for i in range(CHURN)}
    for reservation_id, row in rows.items():
        redis_view = await store.get_reservation(reservation_id)
        if reservation_id in FINAL_STATES:
            assert redis_view.state is FINAL_STATES[reservation_id]
        assert row.state == redis_view.state.value
        assert row.channel == redis_view.channel
        assert json.loads(row.lines) == [
            [ln.sku, ln.location_id, ln.qty] for ln in redis_view.lines
        ]
        assert row.customer_ref == redis_view.customer_ref
        assert row.created_at == ms_to_datetime(redis_view.created_at_ms)
        assert row.updated_at == ms_to_datetime(redis_view.updated_at_ms)
        expected_exp = redis_view.expires_at_ms
        assert row.expires_at == (None if expected_exp is None else ms_to_datetime(expected_exp))
        assert row.at_risk == redis_view.at_risk
        history = sorted(
            (t.state, t.at)
            for t in transitions
            if t.reservation_id == reservation_id and t.state != "extended"
        )
        assert history == sorted((s, ms_to_datetime(at)) for s, at in redis_view.history)
    assert rows["r1"].customer_ref == "crm-1"
    assert rows["r3"].at_risk
    assert rows["r4"].at_risk
    assert not rows["r2"].at_risk
    assert [t.state for t in transitions if t.reservation_id == "r3"].count("extended") == 1

    # Movements: the columns carry the event's fields, the rest is in `details`.
    by_kind = {e.kind: e for e in events}
    with engine.connect() as conn:
        movements = {
            m.event_id.split("/", 1)[1]: m
            for m in conn.execute(
                select(TABLES["movements"]).where(TABLES["movements"].c.namespace == namespace)
            )
        }
    sale = movements[by_kind["adjusted"].stream_id]
    assert (sale.source, sale.source_event_id, sale.reason) == ("pos", "till-1", "sale")
    assert (sale.d_on_hand, sale.on_hand, sale.reserved) == (-8, 0, 7)
    assert json.loads(sale.details)["delta"] == "-8"
    stale = movements[by_kind["count_stale"].stream_id]
    assert stale.occurred_at == ms_to_datetime(int(by_kind["count_stale"].fields["as_of"]))
    assert json.loads(stale.details)["count"] == "50"
    hold = next(e for e in events if e.kind == "held" and e.fields["res"] == "r5")
    held = movements[hold.stream_id]
    assert (held.reservation_id, held.channel, held.qty, held.d_reserved) == ("r5", "web", 1, 1)
    assert held.occurred_at == hold.at

    locations = {row[0]: row for row in first["locations"]}
    assert set(locations) == {"store-a", "store-b", "wh-1"}
    assert locations["wh-1"][1:5] == ("Warehouse 1", "warehouse", None, None)
    assert locations["wh-1"][5:7] == (False, True)

    # Recording the same events again changes nothing.
    assert ledger.record(events) == 0
    assert dump(engine, namespace) == first

    # The regression check and the rebuild read these: they match Redis.
    redis_seq = cast("dict[str, str]", await store.client.hgetall(store.keys.seq))
    assert ledger.max_seq_by_sku(namespace) == {s: int(v) for s, v in redis_seq.items()}
    positions = ledger.positions(namespace)
    churned = {(sku + "-c", "store-a"), (sku + "-d", "store-b")}
    assert set(positions) == {(sku, "store-a"), (sku2, "store-b")} | churned
    for (s, loc), (on_hand, reserved, seq) in positions.items():
        pos = cast("dict[str, str]", await store.client.hgetall(store.keys.position(s, loc)))
        assert (on_hand, reserved) == (int(pos["on_hand"]), int(pos["reserved"]))
        carrying = [
            e.seq for e in events if (e.sku, e.location_id) == (s, loc) and "on_hand" in e.fields
        ]
        assert seq == max(carrying)


async def test_ledger_is_the_same_in_any_order_and_batching(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    """Re-delivery, reordering and any batch split give the ledger of the in-order write."""
    await drive(store, stocked, sku, sku + "-b")
    events = await outbox_events(store, namespace)
    ledger = SqlLedger(engine)
    ledger.record(events)
    reference = dump(engine, namespace)
    rng = random.Random(20261126)
    for i in range(50):
        ns = f"{namespace}p{i}"
        mine = renamed(events, ns)
        shuffled = mine + rng.sample(mine, k=rng.randint(0, len(mine) // 2))  # duplicates
        rng.shuffle(shuffled)
        cuts = sorted(rng.sample(range(1, len(shuffled)), k=rng.randint(0, 8)))
        new_rows = 0
        for start, end in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
            new_rows += ledger.record(shuffled[start:end])
        assert new_rows == len(reference["movements"]), f"permutation {i}"
        assert dump(engine, ns) == reference, f"permutation {i}"


async def test_flag_before_the_hold_leaves_a_placeholder_that_the_hold_fills(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    await stocked(sku, 2)
    await store.reserve("r-early", "web", [Line(sku, "store-a", 2)], 600)
    await store.adjust(sku, "store-a", -1, reason="sale", source="pos", source_event_id="s1")
    events = await outbox_events(store, namespace)
    ledger = SqlLedger(engine)
    flag = [e for e in events if e.kind == "at_risk"]
    assert flag
    assert flag[0].fields["res"] == "r-early"
    ledger.record(flag)
    with engine.connect() as conn:
        row = conn.execute(
            select(TABLES["reservations"]).where(TABLES["reservations"].c.namespace == namespace)
        ).one()
    assert row.at_risk
    assert row.channel == ""
    ledger.record(events)
    with engine.connect() as conn:
        row = conn.execute(
            select(TABLES["reservations"]).where(TABLES["reservations"].c.namespace == namespace)
        ).one()
    held = next(e for e in events if e.kind == "held")
    assert (row.state, row.channel, row.at_risk) == ("held", "web", True)
    assert row.created_at == row.updated_at == held.at
    assert json.loads(row.lines) == [[sku, "store-a", 2]]


async def test_ledger_folds_movements_a_write_through_recorded_first(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    """A sale's write-through stores only movements; the writer, recording the same events
    later (movements already there), still folds every reservation row."""
    await drive(store, stocked, sku, sku + "-b")
    events = await outbox_events(store, namespace)
    ledger = SqlLedger(engine)
    ledger.record(events)
    reference = dump(engine, namespace)
    ns = f"{namespace}w"
    mine = renamed(events, ns)
    sales = [e for e in mine if e.kind == "fulfilled"]
    assert sales
    assert ledger.record_movements(sales) == len(sales)
    assert dump(engine, ns)["reservations"] == []  # the fold is left to the writer
    assert ledger.record(mine) == len(reference["movements"]) - len(sales)
    assert dump(engine, ns) == reference
