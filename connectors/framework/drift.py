"""Drift: the source's counts against the engine's, per position."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from connectors.framework.metrics import connector_metrics
from stocksync.plugins import Drift, EngineContext, SourceCounts

log = logging.getLogger(__name__)


async def measure(
    ctx: EngineContext, connector: str, source: SourceCounts, field: str = "on_hand"
) -> list[Drift]:
    """Positions whose ``field`` (``on_hand`` or ``available``) differs from the source's count.

    Exports the total as ``stocksync_source_drift_units{connector}``.
    """
    by_sku: dict[str, list[str]] = {}
    for sku, location_id in source:
        by_sku.setdefault(sku, []).append(location_id)
    drifts: list[Drift] = []
    for sku, locations in sorted(by_sku.items()):
        found = {pos.location_id: pos for pos, _ in await ctx.store.positions(sku, locations)}
        for location_id in sorted(locations):
            position = found.get(location_id)  # an unknown location holds nothing for us
            ours = 0 if position is None else getattr(position, field)
            theirs = source[(sku, location_id)]
            if ours != theirs:
                drifts.append(Drift(sku, location_id, theirs, ours))
    metrics = connector_metrics(ctx.registry)
    metrics.drift.labels(connector).set(sum(d.units for d in drifts))
    metrics.drift_positions.labels(connector).set(len(drifts))
    return drifts


async def check_periodically(
    check: Callable[[], Awaitable[object]], interval_seconds: float, connector: str
) -> None:
    """Run ``check`` every ``interval_seconds`` (0: never) until cancelled; failures are logged
    and retried at the next tick (a drift check must not stop the connector)."""
    if interval_seconds <= 0:
        return
    while True:
        try:
            await check()
        except Exception:
            log.exception("drift check of %s failed", connector)
        await anyio.sleep(interval_seconds)
