"""A location moved to another stock domain, as both domains' ledgers and checks see it."""

from __future__ import annotations

from typing import cast

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from stocksync.domain.model import Line, Location
from stocksync.ledger.queries import folded_skus, max_seqs
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.ledger.tables import LedgerLocation
from stocksync.recovery.rebuild import ledger_payload
from stocksync.recovery.regression import check_regression
from stocksync.store.domain_moves import move_location
from stocksync.store.recovery import RecoveryOps
from stocksync.store.redis_store import RedisStockStore

LOC = "store-a"


async def copy_to_ledger(store: RedisStockStore, engine: Engine, domain: str) -> None:
    keys = store.keys_of(domain)
    raw = cast("list[tuple[str, dict[str, str]]]", await store.client.xrange(keys.outbox))
    SqlLedger(engine).record_entries({keys.ledger_namespace: raw})


def ledger_positions(engine: Engine, namespace: str) -> dict[tuple[str, str], tuple[int, int]]:
    out = {}
    for page in folded_skus(engine, namespace):
        for f in page:
            for loc, on_hand, reserved in zip(
                f.locations.split("\n"), f.on_hand, f.reserved, strict=True
            ):
                out[(f.sku, loc)] = (on_hand, reserved)
    return out


async def test_both_ledgers_balance_and_no_seq_goes_back(
    engine: Engine, store: RedisStockStore, sku: str
) -> None:
    await store.upsert_location(Location(LOC, "Store A", "store", 52.5, 13.4, True, True))
    await store.upsert_location(
        Location("store-n", "Store N", "store", 53.5, 10.0, True, True, domain="north")
    )
    await store.set_count(sku, LOC, 9, safety_stock=1)
    await store.set_count(sku, "store-n", 4)  # north already has this SKU: its own seq 1
    await store.reserve("r1", "web", [Line(sku, LOC, 2)], 600)
    await store.fulfill("r1")
    for domain in ("default", "north"):
        await copy_to_ledger(store, engine, domain)

    await move_location(store, LOC, "north")
    await store.adjust(sku, LOC, -1, reason="damage", source="wms", source_event_id="d1")
    for domain in ("default", "north"):
        await copy_to_ledger(store, engine, domain)

    default_ns = store.keys.ledger_namespace
    north_ns = store.keys_of("north").ledger_namespace
    assert ledger_positions(engine, default_ns) == {(sku, LOC): (0, 0)}
    assert ledger_positions(engine, north_ns) == {(sku, LOC): (6, 0), (sku, "store-n"): (4, 0)}
    for domain in ("default", "north"):
        ops = RecoveryOps(store, domain)
        namespace = store.keys_of(domain).ledger_namespace
        assert await check_regression(ops, engine, namespace) == []
        ledger_seqs = dict(pair for page in max_seqs(engine, namespace) for pair in page)
        assert ledger_seqs == await ops.seqs()

    with Session(engine) as session:
        rows = session.exec(
            select(LedgerLocation.namespace, LedgerLocation.location_id).where(
                col(LedgerLocation.namespace).in_([default_ns, north_ns])
            )
        ).all()
    assert sorted(rows) == sorted([(north_ns, LOC), (north_ns, "store-n")])

    # A rebuild of north from its ledger restores the moved position, safety stock included.
    with Session(engine) as session:
        payload = ledger_payload(session, north_ns, sku)
    restored = {p[0]: p[1:4] for p in payload.positions}
    assert restored[LOC] == [6, 0, 1]
    with Session(engine) as session:
        assert ledger_payload(session, default_ns, sku).positions == []
