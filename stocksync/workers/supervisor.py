"""Runs every background worker in one anyio task group (in `serve` or `stocksync worker`).

Each worker is supervised: an unexpected exception is logged, counted
(``stocksync_worker_restarts_total{worker}``) and the worker restarted after a bounded
back-off, so one failing worker neither stops the others nor ends the API it runs in.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
from sqlalchemy.engine import Engine

from stocksync.config import Settings
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.metrics import Metrics
from stocksync.recovery.audit import audit_lease, run_audits
from stocksync.recovery.claims import SWEEP_INTERVAL_SECONDS, claims_lease, run_claim_sweeps
from stocksync.recovery.regression import regression_lease, run_regression_checks
from stocksync.store.base import acting_as
from stocksync.store.outbox import Outbox
from stocksync.store.redis_store import RedisStockStore
from stocksync.webhooks.worker import run_webhooks, webhooks_lease
from stocksync.workers.ledger_copy import LedgerCopy
from stocksync.workers.ledger_domains import run_ledger_copies
from stocksync.workers.reaper import run_reaper

log = logging.getLogger(__name__)

RESTART_BACKOFF_MAX_SECONDS = 30.0
HEALTHY_RUN_SECONDS = 60.0  # a worker that ran this long before failing starts over at once


async def supervised(
    name: str,
    job: Callable[[], Awaitable[None]],
    metrics: Metrics,
    *,
    initial_backoff: float = 0.5,
) -> None:
    """Run ``job`` forever: restart it whenever it raises or returns (workers never end)."""
    backoff = initial_backoff
    while True:
        started = time.monotonic()
        with acting_as(f"worker:{name}"):  # also names the worker on these lines
            try:
                await job()
                log.error("worker %s returned; restarting it", name)
            except Exception:  # any failure: the worker restarts, the process keeps serving
                log.exception("worker %s failed; restarting it in %.1fs", name, backoff)
        metrics.worker_restarts.labels(name).inc()
        if time.monotonic() - started >= HEALTHY_RUN_SECONDS:
            backoff = initial_backoff
        await anyio.sleep(backoff)
        backoff = min(backoff * 2, RESTART_BACKOFF_MAX_SECONDS)


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
    """Hold reaper, ledger copy, periodic regression check, audit, the sweep of the
    directory's reservation claims and the webhook feed, until cancelled."""
    consumer = consumer_name()

    def ledger_copy(outbox: Outbox) -> LedgerCopy:
        return LedgerCopy(
            outbox,
            ledger,
            metrics,
            consumer=consumer,
            batch=settings.ledger_batch,
            claim_idle_ms=int(settings.ledger_claim_idle_seconds * 1000),
            dead_group_idle_ms=int(settings.outbox_group_idle_seconds * 1000),
        )

    jobs: dict[str, Callable[[], Awaitable[None]]] = {
        "reaper": lambda: run_reaper(
            store, metrics, interval=settings.reaper_interval_seconds, batch=settings.reaper_batch
        ),
        "ledger_copy": lambda: run_ledger_copies(store, ledger_copy),
        # Once per deployment, not once per process: each loop runs its check only while it
        # holds the check's lease in Redis (see stocksync.recovery.lease).
        "regression_check": lambda: run_regression_checks(
            store,
            engine,
            metrics,
            interval=settings.regression_check_seconds,
            lease=regression_lease(store, settings.regression_check_seconds),
        ),
        "audit": lambda: run_audits(
            store,
            engine,
            settings.namespace,
            metrics,
            settings.audit_interval_seconds,
            lease=audit_lease(store, settings.audit_interval_seconds),
        ),
        "claims_sweep": lambda: run_claim_sweeps(
            store, lease=claims_lease(store, SWEEP_INTERVAL_SECONDS)
        ),
        # The signed change feed: one process of the deployment reads the outboxes for it.
        "webhooks": lambda: run_webhooks(
            store, engine, metrics, settings, lease=webhooks_lease(store)
        ),
    }
    backoff = settings.worker_restart_backoff_seconds
    for name in jobs:
        # Exported at 0 from the start, so increase() and rate() see a worker's first restart.
        metrics.worker_restarts.labels(name)
    async with anyio.create_task_group() as tg:
        for name, job in jobs.items():
            tg.start_soon(partial(supervised, name, job, metrics, initial_backoff=backoff))
