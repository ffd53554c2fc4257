"""The Square connector: a poller of inventory changes, a webhook receiver and a drift check."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from connectors.framework.commands import Unmappable
from connectors.framework.drift import check_periodically, measure
from connectors.framework.pipeline import Pipeline
from connectors.framework.retry import Backoff, is_transient
from connectors.square import webhook
from connectors.square.client import SquareClient, SquareError
from connectors.square.config import SquareConfig
from connectors.square.mapping import map_source_count
from connectors.square.poller import Poller, SweepSummary
from stocksync.plugins import Drift, EngineContext, SourceCounts

log = logging.getLogger(__name__)
NAME = "square"
# A webhook answers quickly: a few short retries, then 503 so that Square delivers again.
WEBHOOK_BACKOFF = Backoff(attempts=3, base_seconds=0.05, cap_seconds=0.5)


class SquareConnector:
    """Square POS inventory kept in step with the engine."""

    name = NAME

    def __init__(self, config: SquareConfig) -> None:
        self.config = config
        self.ids = config.id_map()

    async def run(self, ctx: EngineContext) -> None:
        """Poll every ``poll_interval_seconds`` and check drift periodically, until cancelled."""
        pipeline = Pipeline(NAME, ctx, self.config.retry.backoff())
        async with SquareClient(self.config) as client, anyio.create_task_group() as tg:
            tg.start_soon(
                check_periodically,
                lambda: self.drift(ctx),
                self.config.drift_interval_seconds,
                NAME,
            )
            await self._poll_forever(Poller(self.config, self.ids, client, pipeline))

    async def _poll_forever(self, poller: Poller) -> None:
        failures = 0
        while True:
            try:
                summary = await poller.sweep()
            except Exception as exc:
                if not (is_transient(exc) or isinstance(exc, SquareError)):
                    raise
                failures += 1
                wait = self._failure_wait(failures)
                log.warning(
                    "square sweep failed (%s); resuming from the checkpoint in %.1fs", exc, wait
                )
                await anyio.sleep(wait)
                continue
            failures = 0
            if summary.changes:
                log.info("square sweep: %s", summary)
            await anyio.sleep(self.config.poll_interval_seconds)

    def _failure_wait(self, failures: int) -> float:
        retry = self.config.retry
        ceiling = min(retry.cap_seconds, retry.base_seconds * 2**failures)
        return max(self.config.poll_interval_seconds, random.uniform(0, ceiling))

    async def sync_once(self, ctx: EngineContext) -> SweepSummary:
        """One sweep from the checkpoint to Square's last page (what ``run`` repeats)."""
        pipeline = Pipeline(NAME, ctx, self.config.retry.backoff())
        async with SquareClient(self.config) as client:
            return await Poller(self.config, self.ids, client, pipeline).sweep()

    async def handle_webhook(self, ctx: EngineContext, request: Request) -> Response:
        key = self.config.signature_key
        return await webhook.receive(
            request,
            Pipeline(NAME, ctx, WEBHOOK_BACKOFF),
            self.ids,
            None if key is None else key.get_secret_value(),
            self.config.notification_url,
        )

    async def drift(self, ctx: EngineContext) -> list[Drift] | None:
        """Square's IN_STOCK counts against the engine's on_hand."""
        counts: SourceCounts = {}
        skipped = 0
        async with SquareClient(self.config) as client:
            async for raw in client.counts(self.config.polled_locations(self.ids)):
                try:
                    found = map_source_count(raw, self.ids)
                except Unmappable:
                    skipped += 1  # not ours to compare (an unmapped item) or unreadable
                    continue
                if found is not None:
                    sku, location_id, units = found
                    counts[(sku, location_id)] = units
        if skipped:
            log.info("square drift: %d counts not in the mapping file were skipped", skipped)
        return await measure(ctx, NAME, counts, "on_hand")


def create(table: Mapping[str, Any]) -> SquareConnector:
    """The connector from its ``[square]`` table (the mapping file is read now)."""
    return SquareConnector(SquareConfig.parse(table))
