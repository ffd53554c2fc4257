"""Detect a Redis that went back in time: its per-SKU seq lower than the ledger's."""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.metrics import Metrics
from stocksync.store.recovery import RecoveryOps

log = logging.getLogger(__name__)


async def check_regression(
    ops: RecoveryOps,
    engine: Engine,
    namespace: str,
    metrics: Metrics | None = None,
    *,
    set_gauge: bool = True,
) -> list[str]:
    """Freeze every SKU whose Redis state is older than the ledger; returns the new ones.

    ``set_gauge=False`` counts the freezes but leaves ``stocksync_regressed_skus`` alone: a
    process that never checks again (an API without its workers) would keep exporting its
    start-up count after a rebuild, and an alert on it would never resolve.
    """

    ledger = SqlLedger(engine)
    seqs = await anyio.to_thread.run_sync(ledger.max_seq_by_sku, namespace)
    frozen = await ops.freeze_regressed(seqs)
    if frozen:
        log.error("Redis is behind the ledger for %d SKU(s): %s", len(frozen), frozen[:20])
    if metrics is not None:
        metrics.stock_regressed.inc(len(frozen))
        if set_gauge:
            metrics.regressed_skus.set(len(await ops.regressed()))
    return frozen


async def run_regression_checks(
    ops: RecoveryOps, engine: Engine, namespace: str, metrics: Metrics, interval: float = 10.0
) -> None:
    """Check periodically (a Redis restored from an older file while we run)."""
    while True:
        await anyio.sleep(interval)
        try:
            await check_regression(ops, engine, namespace, metrics)
        except (RedisError, SQLAlchemyError) as exc:
            log.warning("regression check failed: %s", exc)
