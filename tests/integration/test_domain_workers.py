"""The workers over every stock domain: ledger copy, regression check, audit and rebuild."""

from __future__ import annotations

import time

import anyio
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from stocksync.domain.errors import StockRegressed
from stocksync.domain.model import Line, Location
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.ledger.tables import Movement
from stocksync.metrics import Metrics
from stocksync.recovery.audit import audit_domains, last_audits, record_audit, summed
from stocksync.recovery.rebuild import rebuild_domains
from stocksync.recovery.regression import check_regression_domains, domains_behind_ledger
from stocksync.store.keys import ON_HAND
from stocksync.store.outbox import Outbox
from stocksync.store.recovery import RecoveryOps
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_copy import LedgerCopy
from stocksync.workers.ledger_domains import run_ledger_copies
from tests.support.domains import DEFAULT_STORE, EU, EU_STORE, two_domains

WAIT_SECONDS = 20.0
SALES = 3


def movements(engine: Engine, namespace: str, sku: str) -> list[tuple[str, int]]:
    """(event id, seq) of the SKU's ledger rows under a ledger namespace."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Movement.event_id, Movement.seq).where(
                Movement.namespace == namespace, Movement.sku == sku
            )
        ).all()
    return sorted((str(e), int(s)) for e, s in rows)


async def copy_all(
    store: RedisStockStore, engine: Engine, metrics: Metrics, consumer: str = "t"
) -> None:
    """Every domain's outbox into the ledger, once (drain_once per domain)."""
    for domain in await store.domains(fresh=True):
        copy = LedgerCopy(store.outbox_of(domain), SqlLedger(engine), metrics, consumer=consumer)
        await copy.drain_once()


async def test_one_worker_copies_every_domain_once_with_its_own_ids_and_seqs(
    store: RedisStockStore, engine: Engine, namespace: str, sku: str
) -> None:
    await two_domains(store, sku, SALES)
    metrics = Metrics()
    ledger = SqlLedger(engine)
    eu_ns = f"{namespace}:{EU}"

    def make(outbox: Outbox) -> LedgerCopy:
        return LedgerCopy(outbox, ledger, metrics, consumer="w1")

    async def until(check: object) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not check():  # type: ignore[operator]
            assert time.monotonic() < deadline, "the ledger copy did not catch up"
            await anyio.sleep(0.05)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_ledger_copies(store, make, block_ms=100, rescan_seconds=0.1))
        expected = SALES + 1
        await until(
            lambda: (
                len(movements(engine, namespace, sku)) == expected
                and len(movements(engine, eu_ns, sku)) == expected
            )
        )
        # A domain created while the worker runs is picked up by it.
        await store.upsert_location(
            Location("store-apac", "APAC", "store", 1.3, 103.8, True, True, "apac")
        )
        await store.set_count(sku, "store-apac", 7)
        await until(lambda: len(movements(engine, f"{namespace}:apac", sku)) == 1)
        tg.cancel_scope.cancel()

    default_rows = movements(engine, namespace, sku)
    eu_rows = movements(engine, eu_ns, sku)
    # Each domain's per-SKU seq is its own: 1..N in both.
    assert sorted(s for _, s in default_rows) == list(range(1, SALES + 2))
    assert sorted(s for _, s in eu_rows) == list(range(1, SALES + 2))
    assert all(e.startswith(f"{namespace}/") for e, _ in default_rows)
    assert all(e.startswith(f"{eu_ns}/") for e, _ in eu_rows)
    # Exactly once: a second copy of every domain adds nothing. As the stopped worker's own
    # consumer, so entries it committed but had not acknowledged when it was cancelled are
    # redone (and add nothing) rather than left pending in the lag.
    await copy_all(store, engine, metrics, consumer="w1")
    assert movements(engine, namespace, sku) == default_rows
    assert movements(engine, eu_ns, sku) == eu_rows
    lag = metrics.registry.get_sample_value("stocksync_outbox_lag_events", {"domain": EU})
    assert lag == 0
    assert metrics.registry.get_sample_value("stocksync_ledger_lag_events") == 0


async def test_a_regressed_domain_is_frozen_and_rebuilt_alone(
    store: RedisStockStore, engine: Engine, namespace: str, sku: str
) -> None:
    await two_domains(store, sku, SALES)
    metrics = Metrics()
    await copy_all(store, engine, metrics)
    assert await check_regression_domains(store, engine, metrics) == {}
    eu = RecoveryOps(store, EU)
    await store.client.hset(store.keys_of(EU).seq, sku, 1)  # eu went back in time for the SKU

    assert await check_regression_domains(store, engine, metrics) == {EU: [sku]}
    assert await eu.regressed() == {sku}
    assert await RecoveryOps(store).regressed() == set()
    labels = {"domain": EU}
    assert metrics.registry.get_sample_value("stocksync_domain_regressed_skus", labels) == 1
    assert metrics.registry.get_sample_value("stocksync_regressed_skus") == 1
    with pytest.raises(StockRegressed):
        await store.reserve("r-eu", "web", [Line(sku, EU_STORE, 1)], 600)
    assert (await store.reserve("r-a", "web", [Line(sku, DEFAULT_STORE, 1)], 600)).created

    done = await rebuild_domains(store, engine)
    assert [(d.domain, d.result.sku, d.result.seq) for d in done] == [(EU, sku, SALES + 1)]
    assert await eu.regressed() == set()
    assert (await store.position(sku, EU_STORE)).on_hand == 50 - SALES
    assert (await store.reserve("r-eu", "web", [Line(sku, EU_STORE, 1)], 600)).created


async def test_the_start_up_guard_sees_a_domain_behind_the_ledger(
    store: RedisStockStore, engine: Engine, sku: str
) -> None:
    await two_domains(store, sku, SALES)
    await copy_all(store, engine, Metrics())
    assert await domains_behind_ledger(store, engine) == []
    # eu's stream restored from an older file: its newest id is older than the ledger's.
    outbox = store.keys_of(EU).outbox
    await store.client.delete(outbox)
    await store.client.xadd(outbox, {"kind": "x"}, id="1-1")
    assert await domains_behind_ledger(store, engine) == [EU]


async def test_audit_is_per_domain(
    store: RedisStockStore, engine: Engine, namespace: str, sku: str
) -> None:
    await two_domains(store, sku, SALES)
    await copy_all(store, engine, Metrics())
    reports = await audit_domains(store, engine)
    assert {d: (r.positions, r.drifts) for d, r in reports.items()} == {
        "default": (1, []),
        EU: (1, []),
    }
    # Drift in eu alone shows in eu alone.
    await store.client.hset(store.keys_of(EU).position(sku, EU_STORE), ON_HAND, 99)
    reports = await audit_domains(store, engine)
    assert reports["default"].drifts == []
    assert [(d.location_id, d.redis_on_hand) for d in reports[EU].drifts] == [(EU_STORE, 99)]
    for domain, report in reports.items():
        await record_audit(store, report, domain)
    summaries = await last_audits(store)
    assert {d: s.drifting for d, s in summaries.items()} == {"default": 0, EU: 1}
    total = summed(summaries)
    assert total is not None
    assert (total.positions, total.drifting) == (2, 1)
