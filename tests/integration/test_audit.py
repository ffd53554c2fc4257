"""The audit against a real Redis and SQL ledger, and the drift metric the workers export."""

from __future__ import annotations

import anyio
from sqlalchemy.engine import Engine

from stocksync.domain.model import Line
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.metrics import Metrics
from stocksync.recovery.audit import audit, run_audits
from stocksync.store.keys import ON_HAND, RESERVED
from stocksync.store.outbox import decode_event
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import Stocked


def sample(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


async def record_outbox(store: RedisStockStore, engine: Engine, namespace: str) -> None:
    raw = await store.client.xrange(store.keys.outbox)
    SqlLedger(engine).record([decode_event(namespace, sid, fields) for sid, fields in raw])


async def test_audit_finds_no_drift_then_the_drift_a_lost_write_makes(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    await stocked(sku, 5)
    await store.reserve("r1", "web", [Line(sku, "store-a", 2)], 600)
    await store.fulfill("r1")
    await record_outbox(store, engine, namespace)
    clean = await audit(store, engine, namespace)
    assert (clean.positions, clean.in_flight, clean.drifts) == (1, 0, [])
    # A change that bypassed the scripts (no event, so the ledger cannot know of it).
    await store.client.hincrby(store.keys.position(sku, "store-a"), ON_HAND, -1)
    drifted = await audit(store, engine, namespace)
    assert [(d.redis_on_hand, d.ledger_on_hand) for d in drifted.drifts] == [(2, 3)]
    assert drifted.drift_units == 1


async def test_audit_counts_unrecorded_events_as_in_flight(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    await stocked(sku, 5)
    await record_outbox(store, engine, namespace)
    await store.reserve("r1", "web", [Line(sku, "store-a", 1)], 600)  # not yet in the ledger
    report = await audit(store, engine, namespace)
    assert (report.positions, report.in_flight, report.drifts) == (0, 1, [])


async def test_run_audits_exports_the_drift_metric(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    await stocked(sku, 5)
    await record_outbox(store, engine, namespace)
    await store.client.hincrby(store.keys.position(sku, "store-a"), RESERVED, 3)
    metrics = Metrics()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_audits, store, engine, namespace, metrics, 0.05)
            # The worker only sets a gauge: poll it, bounded by fail_after.
            while not sample(metrics, "stocksync_ledger_drift_units"):  # noqa: ASYNC110
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert sample(metrics, "stocksync_ledger_drift_units") == 3
    assert sample(metrics, "stocksync_ledger_drift_positions") == 1
