"""Crash tests: SIGKILL the API, the ledger worker or redis-server under load, restart it,
and prove that nothing the API acknowledged was lost or applied twice (DESIGN promise 2,
rules 5 and 6).

Each test runs its own stack: a redis-server (AOF, ``appendfsync always``) on a free port with
its data in a temporary directory, a ledger (a SQLite file, or a PostgreSQL database created
for the test and dropped after it: every scenario runs on both), ``stocksync serve`` (API only, no
workers) and ``stocksync worker`` (reaper, ledger writer, regression checks) as subprocesses
in sessions of their own. A client driver runs a reserve / confirm / ready / fulfil / release
mix through HTTP and records every operation the API acknowledged (2xx); it retries a failed
call (transport error or 5xx) with the same reservation id, which is safe because every call
is idempotent. Once the driver has N acknowledgements, one process is killed with SIGKILL and
restarted; the load then runs to completion, the worker drains the outbox, and the
acknowledged state is checked in Redis, in the SQL ledger and by ``stocksync audit``.
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from stocksync.domain.model import Line as DomainLine
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.metrics import Metrics
from stocksync.recovery.audit import audit
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_copy import GROUP, LedgerCopy
from tests.support.crash_checks import check_invariants
from tests.support.crash_load import load_with_crash
from tests.support.processes import Stack
from tests.support.store import Stocked

pytestmark = pytest.mark.slow


# -- the tests -----------------------------------------------------------------------------


async def test_kill_api_mid_load(stack: Stack) -> None:
    crash = await load_with_crash(stack, "api")
    assert crash.driver.failed_attempts > 0, "no call failed: the kill missed the load"
    await check_invariants(stack, crash)


async def test_kill_ledger_worker_mid_load(stack: Stack) -> None:
    crash = await load_with_crash(stack, "worker")
    assert crash.worker_held > 0, "the worker was not killed while holding outbox entries"
    await check_invariants(stack, crash)


async def test_kill_redis_mid_load(stack: Stack) -> None:
    crash = await load_with_crash(stack, "redis")
    assert crash.driver.failed_attempts > 0, "no call failed: the kill missed the load"
    await check_invariants(stack, crash)


async def test_audit_counts_a_killed_workers_unclaimed_entries_as_in_flight(
    store: RedisStockStore, stocked: Stocked, sku: str, namespace: str, engine: Engine
) -> None:
    """The state a SIGKILLed ledger writer leaves, at library level: it read an entry and
    died before committing it; the new writer records later entries of the same SKU but
    claims the dead one's only after ``claim_idle_ms`` (30 s). In that window the ledger
    holds the SKU's latest seq with a hole below it, and nothing has drifted: the audit must
    count the position as in flight, not report drift (``stocksync audit`` would exit 1)."""
    ledger, metrics = SqlLedger(engine), Metrics()
    await stocked(sku, 10)
    await LedgerCopy(store.outbox, ledger, metrics, consumer="w1").drain_once()
    await store.reserve("gap-1", "web", [DomainLine(sku, "store-a", 2)], 600)
    dead = await store.outbox.read_group(GROUP, "dead-worker", start=">", count=100)
    assert len(dead) == 1  # the hold's event, read and never acknowledged: killed mid-batch
    await store.reserve("gap-2", "web", [DomainLine(sku, "store-a", 1)], 600)
    await LedgerCopy(store.outbox, ledger, metrics, consumer="w2").drain_once()  # idle < 30 s
    assert (await store.position(sku, "store-a")).reserved == 3
    report = await audit(store, engine, namespace)
    assert (report.in_flight, report.drifts) == (1, []), report
    # Once claimed, the position is settled and agrees.
    await LedgerCopy(store.outbox, ledger, metrics, consumer="w2", claim_idle_ms=0).drain_once()
    report = await audit(store, engine, namespace)
    assert (report.positions, report.in_flight, report.drifts) == (1, 0, []), report
