"""The hold reaper: expires reservations whose deadline passed, and reports how late it was."""

from __future__ import annotations

import logging

import anyio
from redis.exceptions import RedisError

from stocksync.metrics import Metrics
from stocksync.store.redis_store import RedisStockStore

log = logging.getLogger(__name__)


async def reap_once(store: RedisStockStore, metrics: Metrics, batch: int) -> int:
    """One reaper pass over every stock domain; returns the most any one domain expired (a
    full batch there means more are due: the caller goes again at once)."""
    most, lag, active = 0, 0.0, 0
    for domain in await store.domains():
        result = await store.reap(batch, domain=domain)
        metrics.expired_holds.inc(result.expired)
        most, lag = max(most, result.expired), max(lag, result.lag_seconds)
        active += result.active
    metrics.hold_expiry_lag.set(lag)
    metrics.active_reservations.set(active)
    return most


async def run_reaper(
    store: RedisStockStore, metrics: Metrics, *, interval: float = 1.0, batch: int = 16
) -> None:
    """Reap forever: back-to-back while a full batch was due, else every ``interval`` seconds."""
    backoff = interval
    while True:
        try:
            expired = await reap_once(store, metrics, batch)
            backoff = interval
        except RedisError as exc:
            log.warning("reaper pass failed: %s; retrying in %.1fs", exc, backoff)
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
            continue
        if expired < batch:
            await anyio.sleep(interval)
