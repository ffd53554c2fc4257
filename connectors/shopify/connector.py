"""The Shopify connector: availability push (``run``), order and refund webhooks, drift of
``available``."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import anyio
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.framework.commands import CancelOrder, Command, PlaceOrder, Unmappable
from connectors.framework.drift import check_periodically, measure
from connectors.framework.metrics import connector_metrics
from connectors.framework.pipeline import DeadLettered, Pipeline
from connectors.framework.retry import Backoff
from connectors.shopify.client import ShopifyClient
from connectors.shopify.config import ShopifyConfig
from connectors.shopify.mapping import (
    ORDER_TOPICS,
    Level,
    Order,
    mapped_levels,
    mapped_pool_levels,
    order_commands,
)
from connectors.shopify.pool_reads import get_pool, pool_available_many
from connectors.shopify.push import AvailabilityPush
from connectors.shopify.refunds import REFUND_TOPIC, Refund, refund_plan
from connectors.shopify.webhook import HMAC_HEADER, TOPIC_HEADER, WEBHOOK_ID_HEADER, verify
from stocksync.domain.errors import Unauthorized
from stocksync.plugins import Drift, EngineContext, SourceCounts

log = logging.getLogger(__name__)

# Shopify waits 5 s for an answer: a webhook retries the engine briefly, then answers 503
# and lets Shopify redeliver later.
WEBHOOK_BACKOFF = Backoff(attempts=3, base_seconds=0.05, cap_seconds=0.5)


class ShopifyConnector:
    name = "shopify"

    def __init__(self, config: ShopifyConfig) -> None:
        self.config = config
        self.idmap = config.load_map()
        self.orders_location = config.orders_location(self.idmap)
        self.secret = config.webhook_secret.get_secret_value()

    def client(self) -> ShopifyClient:
        return ShopifyClient(
            str(self.config.shop_url),
            self.config.api_version,
            self.config.access_token.get_secret_value(),
            timeout=self.config.timeout_seconds,
            backoff=self.config.retry.backoff(),
        )

    def pusher(self, ctx: EngineContext, client: ShopifyClient) -> AvailabilityPush:
        return AvailabilityPush(self.name, ctx, client, self.idmap, self.config)

    async def run(self, ctx: EngineContext) -> None:
        """Push availability as the outbox changes, and check drift every interval. A pool
        the mapping names that does not exist stops it before anything runs
        (:class:`~connectors.shopify.pool_reads.UnknownPool`)."""
        async with self.client() as client:
            pusher = self.pusher(ctx, client)
            await pusher.load_pools()
            async with anyio.create_task_group() as tg:
                tg.start_soon(pusher.run)
                tg.start_soon(
                    check_periodically,
                    lambda: self.drift_with(ctx, client),
                    self.config.drift_interval_seconds,
                    self.name,
                )

    async def handle_webhook(self, ctx: EngineContext, request: Request) -> Response:
        raw = await request.body()
        if not verify(self.secret, raw, request.headers.get(HMAC_HEADER)):
            raise Unauthorized("the X-Shopify-Hmac-Sha256 signature does not match the body")
        topic = request.headers.get(TOPIC_HEADER, "")
        webhook_id = request.headers.get(WEBHOOK_ID_HEADER, "")
        answer: dict[str, Any] = {"topic": topic, "webhook_id": webhook_id}
        if topic not in ORDER_TOPICS and topic != REFUND_TOPIC:
            log.info("shopify webhook %s: topic %r is not handled", webhook_id, topic)
            return JSONResponse({**answer, "outcome": "ignored"})
        pipeline = Pipeline(self.name, ctx, WEBHOOK_BACKOFF)
        text = raw.decode("utf-8", errors="replace")
        kind = f"{topic} {webhook_id}".strip()
        try:
            if topic == REFUND_TOPIC:
                commands: list[Command] = self._refund_commands(raw, answer, pipeline)
            else:
                commands = list(self._order_commands(topic, raw, answer))
        except (ValueError, ValidationError, Unmappable) as exc:  # JSONDecodeError too
            letter = await pipeline.dead_letter(kind, f"unmappable: {exc}", text)
            return JSONResponse({**answer, "outcome": "dead_letter", "letter_id": letter})
        try:
            outcomes = await pipeline.apply(kind, text, commands)
        except DeadLettered as exc:  # refused for good (oversold, lapsed hold): kept, 200
            log.warning("shopify %s dead-lettered: %s", topic, exc.reason)
            return JSONResponse(
                {
                    **answer,
                    "outcome": "dead_letter",
                    "letter_id": exc.letter_id,
                    "reason": exc.reason,
                }
            )
        # a transient failure propagates: the API answers 503 problem+json and Shopify retries
        return JSONResponse({**answer, "outcome": outcomes[0].value if outcomes else "ignored"})

    def _order_commands(
        self, topic: str, raw: bytes, answer: dict[str, Any]
    ) -> list[PlaceOrder | CancelOrder]:
        order = Order.model_validate(json.loads(raw))
        commands = order_commands(
            topic,
            order,
            self.idmap,
            default_location=self.orders_location,
            channel=self.config.channel,
            ignore_unmapped=self.config.ignore_unmapped_lines,
        )
        answer["reservation_id"] = commands[0].reservation_id if commands else None
        return commands

    def _refund_commands(
        self, raw: bytes, answer: dict[str, Any], pipeline: Pipeline
    ) -> list[Command]:
        """The refund's return (none when no line came back); lines that are not returns
        are counted in the answer and the metrics as ``skipped``."""
        plan = refund_plan(
            Refund.model_validate(json.loads(raw)),
            self.idmap,
            self.config.returns.disposition,
            ignore_unmapped=self.config.ignore_unmapped_lines,
        )
        answer["return_id"] = plan.command.return_id if plan.command else None
        answer["skipped"] = plan.skipped
        if plan.skipped:
            pipeline.metrics.outcome(self.name, "skipped", sum(plan.skipped.values()))
        return [plan.command] if plan.command else []

    async def drift(self, ctx: EngineContext) -> list[Drift] | None:
        async with self.client() as client:
            return await self.drift_with(ctx, client)

    async def drift_with(self, ctx: EngineContext, client: ShopifyClient) -> list[Drift]:
        """Shopify's ``available`` per mapped level against the engine's channel availability
        (a pool's level against the pool's offered units; its drift's ``location_id`` is
        ``pool:<pool_id>``)."""
        levels = mapped_levels(self.idmap)
        pool_levels = mapped_pool_levels(self.idmap)
        current = await client.available(
            (level.item_id for level in [*levels.values(), *pool_levels.values()]),
            levels_hint=max(1, len(self.idmap.locations) + len(self.idmap.pools)),
        )
        counts: SourceCounts = {}
        for key, level in levels.items():
            value = current.get((level.item_id, level.location_id))
            if value is not None:  # not stocked there: nothing to compare
                counts[key] = value
        drifts = await measure(ctx, self.name, counts, "available")
        if pool_levels:
            drifts += await self._pool_drift(ctx, pool_levels, current)
            metrics = connector_metrics(ctx.registry)
            metrics.drift.labels(self.name).set(sum(d.units for d in drifts))
            metrics.drift_positions.labels(self.name).set(len(drifts))
        return drifts

    async def _pool_drift(
        self,
        ctx: EngineContext,
        pool_levels: Mapping[tuple[str, str], Level],
        current: Mapping[tuple[str, str], int],
    ) -> list[Drift]:
        skus_of_pool: dict[str, list[str]] = {}
        for sku, pool_id in pool_levels:
            skus_of_pool.setdefault(pool_id, []).append(sku)
        drifts: list[Drift] = []
        for pool_id, skus in sorted(skus_of_pool.items()):
            pool = await get_pool(ctx.store, pool_id)
            if pool is None:
                log.warning("shopify drift: pool %r does not exist", pool_id)
                continue
            ours = await pool_available_many(ctx.store, pool, sorted(skus))
            for sku in sorted(skus):
                level = pool_levels[(sku, pool_id)]
                theirs = current.get((level.item_id, level.location_id))
                if theirs is not None and theirs != ours.get(sku, 0):
                    drifts.append(Drift(sku, f"pool:{pool_id}", theirs, ours.get(sku, 0)))
        return drifts


def create(table: Mapping[str, Any]) -> ShopifyConnector:
    """Entry point ``shopify``: the connector from its ``[shopify]`` config table."""
    return ShopifyConnector(ShopifyConfig.parse(table))
