"""SqlLedger against real Redis events and real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import random
from typing import cast

from sqlalchemy import select
from sqlalchemy.engine import Engine

from stocksync.domain.clock import ms_to_datetime
from stocksync.domain.model import Line
from stocksync.ledger.sale_commits import SaleCommitter
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.ledger.tables import Movement
from stocksync.store.keys import ON_HAND, RESERVED
from stocksync.store.redis_store import RedisStockStore
from tests.support.ledger import CHURN, FINAL_STATES, TABLES, drive, dump, outbox_events, renamed
from tests.support.store import Stocked


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
        assert (on_hand, reserved) == (int(pos.get(ON_HAND, 0)), int(pos.get(RESERVED, 0)))
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


async def test_a_sale_reaches_the_ledger_even_when_the_outbox_was_trimmed_first(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    """With OUTBOX_MAXLEN the stream may drop a sale's entries before the write-through reads
    them; the write-through takes the events from the fulfilment's reply instead."""
    await stocked(sku, 5)
    await store.reserve("sold-1", "pos", [Line(sku, "store-a", 2)], 600)
    sold = await store.fulfill("sold-1")
    await store.client.xtrim(store.keys.outbox, maxlen=0, approximate=False)
    sales = SaleCommitter(SqlLedger(engine))
    await sales.commit(sold.sale_events)
    again = await store.fulfill("sold-1")  # a client's retry: the same events, written once
    assert again.repeated
    assert [e.event_id for e in again.sale_events] == [e.event_id for e in sold.sale_events]
    await sales.commit(again.sale_events)
    await sales.aclose()
    m = Movement.__table__.c  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(
            select(m.kind, m.d_on_hand, m.reservation_id).where(m.namespace == namespace)
        ).all()
    assert [tuple(r) for r in rows] == [("fulfilled", -2, "sold-1")]
    await store.reserve("gone", "web", [Line(sku, "store-a", 1)], 60)
    assert (await store.release("gone")).sale_events == ()  # only a sale is written through
