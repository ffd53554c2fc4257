"""Detect a Redis that went back in time: its per-SKU seq lower than the ledger's.

Per stock domain (DESIGN rule 6): a domain's Redis seqs are compared with the ledger's rows of
the domain's ledger namespace, and its frozen SKUs are its own (``RecoveryOps(store, domain)``).
The ``*_domains`` functions cover every domain of the namespace, read afresh each time.
"""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from stocksync.ledger.queries import max_seqs, newest_stream_id
from stocksync.metrics import Metrics
from stocksync.recovery.lease import Lease, lease_seconds, run_under_lease
from stocksync.store.outbox import stream_order
from stocksync.store.recovery import RecoveryOps
from stocksync.store.redis_store import RedisStockStore

log = logging.getLogger(__name__)

FREEZE_CHUNK = 1_000  # SKUs per check_regression script call


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

    frozen: list[str] = []
    pages = max_seqs(engine, namespace, FREEZE_CHUNK)
    try:
        while (page := await anyio.to_thread.run_sync(next, pages, None)) is not None:
            frozen.extend(await ops.freeze_regressed(dict(page), FREEZE_CHUNK))
    finally:
        await anyio.to_thread.run_sync(pages.close)
    if frozen:
        log.error("Redis is behind the ledger for %d SKU(s): %s", len(frozen), frozen[:20])
    if metrics is not None:
        metrics.stock_regressed.inc(len(frozen))
        if set_gauge:
            metrics.domains.set_regressed(ops.domain, len(await ops.regressed()))
    return frozen


async def check_regression_domains(
    store: RedisStockStore,
    engine: Engine,
    metrics: Metrics | None = None,
    *,
    set_gauge: bool = True,
) -> dict[str, list[str]]:
    """:func:`check_regression` of every domain; the SKUs newly frozen, by domain (only the
    domains that had some)."""
    found: dict[str, list[str]] = {}
    for domain in await store.domains(fresh=True):
        ops = RecoveryOps(store, domain)
        frozen = await check_regression(
            ops, engine, ops.keys.ledger_namespace, metrics, set_gauge=set_gauge
        )
        if frozen:
            found[domain] = frozen
    return found


async def domains_behind_ledger(store: RedisStockStore, engine: Engine) -> list[str]:
    """The domains for which :func:`redis_behind_ledger` answers True (two reads each)."""
    behind = []
    for domain in await store.domains(fresh=True):
        ops = RecoveryOps(store, domain)
        if await redis_behind_ledger(ops, engine, ops.keys.ledger_namespace):
            behind.append(domain)
    return behind


async def redis_behind_ledger(ops: RecoveryOps, engine: Engine, namespace: str) -> bool:
    """The cheap start-up guard: does the ledger hold an event newer than the newest one the
    outbox stream ever took? Stream ids only grow and a restored Redis restores its stream
    too, so a Redis that went back in time (and has taken no write since) answers True; then
    SKUs may be regressed and the per-SKU check must run before any write. Two reads."""
    ledger = await anyio.to_thread.run_sync(newest_stream_id, engine, namespace)
    return ledger is not None and stream_order(ledger) > stream_order(await ops.last_stream_id())


async def check_regression_once(
    store: RedisStockStore,
    engine: Engine,
    metrics: Metrics | None,
    lease: Lease,
    *,
    set_gauge: bool = True,
) -> dict[str, list[str]]:
    """:func:`check_regression_domains` unless another process holds ``lease`` (its own
    periodic check covers it); errors are logged, not raised (a background start-up check)."""
    try:
        if not await lease.hold():
            return {}
        try:
            return await check_regression_domains(store, engine, metrics, set_gauge=set_gauge)
        finally:
            await lease.release()
    except (RedisError, SQLAlchemyError) as exc:
        log.warning("start-up regression check failed: %s", exc)
        return {}


async def run_regression_checks(
    store: RedisStockStore,
    engine: Engine,
    metrics: Metrics,
    interval: float = 10.0,
    *,
    lease: Lease | None = None,
) -> None:
    """Check periodically (a Redis restored from an older file while we run); with a
    ``lease``, only while this process holds it (one check per deployment and interval)."""

    async def once() -> None:
        try:
            await check_regression_domains(store, engine, metrics)
        except (RedisError, SQLAlchemyError) as exc:
            log.warning("regression check failed: %s", exc)

    await anyio.sleep(interval)  # the process checked once as it started
    await run_under_lease(lease, interval, once)


def regression_lease(store: RedisStockStore, interval: float) -> Lease:
    """The lease the regression checks of a namespace share, the start-up one included (one
    check of every domain at a time). Kept where it always was, in the default domain."""
    return Lease(store.client, store.keys.lease("regression"), lease_seconds(interval))
