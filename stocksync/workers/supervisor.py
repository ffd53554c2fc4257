"""Runs every background worker in one anyio task group (in `serve` or `stocksync worker`)."""

from __future__ import annotations

import os
import socket

import anyio
from sqlalchemy.engine import Engine

from stocksync.config import Settings
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.metrics import Metrics
from stocksync.recovery.audit import run_audits
from stocksync.recovery.regression import run_regression_checks
from stocksync.store.recovery import RecoveryOps
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_copy import LedgerCopy
from stocksync.workers.reaper import run_reaper


def consumer_name() -> str:
    """A name unique to this process, for the ledger copy's consumer group."""
    return f"{socket.gethostname()}-{os.getpid()}"


async def run_workers(
    store: RedisStockStore,
    ledger: SqlLedger,
    engine: Engine,
    metrics: Metrics,
    settings: Settings,
) -> None:
    """Hold reaper, ledger copy, periodic regression check and audit, until cancelled."""
    ledger_copy = LedgerCopy(
        store.outbox,
        ledger,
        metrics,
        consumer=consumer_name(),
        batch=settings.ledger_batch,
        claim_idle_ms=int(settings.ledger_claim_idle_seconds * 1000),
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: run_reaper(
                store,
                metrics,
                interval=settings.reaper_interval_seconds,
                batch=settings.reaper_batch,
            )
        )
        tg.start_soon(ledger_copy.run)
        tg.start_soon(
            lambda: run_regression_checks(
                RecoveryOps(store),
                engine,
                settings.namespace,
                metrics,
                interval=settings.regression_check_seconds,
            )
        )
        tg.start_soon(
            run_audits, store, engine, settings.namespace, metrics, settings.audit_interval_seconds
        )
