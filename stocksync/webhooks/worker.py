"""The webhook worker: reads every domain's outbox, queues messages, runs the senders.

Only the worker reads the outbox for webhooks (consumer group ``webhooks`` of each domain's
stream), never the API: delivery adds nothing to the hot path. A batch's messages are committed
to the SQL queue before its entries are acknowledged, so a crash between the two only makes the
same messages again (same ids; queued once). One process of a deployment runs it, the one that
holds the ``webhooks`` lease: a single reader keeps a position's messages in stream order. All
processes use the same consumer name, so a new holder re-reads what the old one left pending.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

import anyio
import anyio.to_thread
import httpx
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine

from stocksync.config import Settings
from stocksync.metrics import Metrics
from stocksync.recovery.lease import Lease, lease_seconds
from stocksync.store.keys import ON_HAND, RESERVED, SAFETY
from stocksync.store.outbox import Entry, Outbox
from stocksync.store.redis_store import RedisStockStore
from stocksync.webhooks.delivery import RetryPolicy, Sender, Wakeup, now_ms
from stocksync.webhooks.messages import (
    RESERVATION_EVENTS,
    BatchChanges,
    Position,
    Reading,
    Subscription,
    build_messages,
    changes_of,
)
from stocksync.webhooks.subscriptions import WebhookStore
from stocksync.webhooks.targets import TargetPolicy

log = logging.getLogger(__name__)

GROUP = "webhooks"
CONSUMER = "webhooks"
REFRESH_SECONDS = 2.0  # subscriptions and pools are re-read this often
RESCAN_SECONDS = 5.0  # new stock domains are found this often
PRUNE_SECONDS = 60.0
BLOCKING_READS = 2  # domains blocking in XREADGROUP at once (each holds a pooled connection)
MAX_BACKOFF_SECONDS = 30.0
LEASE_INTERVAL_SECONDS = 5.0

Pools = dict[str, list[tuple[str, int]]]


def policy_of(settings: Settings) -> TargetPolicy:
    return TargetPolicy(
        allow_private=settings.webhook_allow_private,
        allowed_cidrs=settings.webhook_allowed_cidrs,
        max_url_length=settings.webhook_max_url_length,
    )


class SubscriptionCache:
    """The namespace's subscriptions, re-read from SQL at most every REFRESH_SECONDS."""

    def __init__(self, hooks: WebhookStore, namespace: str) -> None:
        self.hooks = hooks
        self.namespace = namespace
        self._subs: list[Subscription] = []
        self._read_at = float("-inf")
        self._lock = anyio.Lock()

    async def get(self, fresh: bool = False) -> list[Subscription]:
        async with self._lock:
            if fresh or time.monotonic() - self._read_at >= REFRESH_SECONDS:
                self._subs = await anyio.to_thread.run_sync(self.hooks.active, self.namespace)
                self._read_at = time.monotonic()
            return self._subs


def _wants_pools(subs: Sequence[Subscription]) -> bool:
    stock = [s for s in subs if s.events - set(RESERVATION_EVENTS)]
    return any(s.pool is not None or s.location_ids is None for s in stock) or any(
        s.pool is not None for s in subs
    )


class FeedConsumer:
    """The ``webhooks`` consumer of one domain's outbox."""

    def __init__(self, feed: WebhookFeed, outbox: Outbox) -> None:
        self.feed = feed
        self.outbox = outbox
        self.keys = feed.store.keys_of(outbox.domain)
        self._pools: Pools = {}
        self._pools_at = float("-inf")

    async def pools(self) -> Pools:
        """The domain's pools as [(location_id, buffer), ...] (the pool hash's ``locs``)."""
        if time.monotonic() - self._pools_at < REFRESH_SECONDS:
            return self._pools
        client = self.feed.store.client
        ids = sorted(str(i) for i in await client.smembers(self.keys.pools))
        found: Pools = {}
        if ids:
            async with client.pipeline(transaction=False) as pipe:
                for pool_id in ids:
                    pipe.hget(self.keys.pool(pool_id), "locs")
                raw = await pipe.execute()
            for pool_id, locs in zip(ids, raw, strict=True):
                if locs:
                    found[pool_id] = [(str(m[0]), int(m[2])) for m in json.loads(locs)]
        self._pools, self._pools_at = found, time.monotonic()
        return found

    async def readings(self, positions: Sequence[Position]) -> dict[Position, Reading]:
        if not positions:
            return {}
        async with self.feed.store.client.pipeline(transaction=False) as pipe:
            for sku, loc in positions:
                pipe.hmget(self.keys.position(sku, loc), [ON_HAND, RESERVED, SAFETY])
            raw = await pipe.execute()
        return {
            pos: (int(v[0] or 0), int(v[1] or 0), int(v[2] or 0))
            for pos, v in zip(positions, raw, strict=True)
        }

    async def messages_of(self, changes: BatchChanges, subs: list[Subscription]) -> int:
        pools: Pools = {}
        if (changes.moved or changes.transitions) and _wants_pools(subs):
            pools = await self.pools()
        needed = set(changes.moved)
        for members in pools.values():
            for sku in changes.skus:
                if any((sku, loc) in changes.moved for loc, _ in members):
                    needed.update((sku, loc) for loc, _ in members)
        readings = await self.readings(sorted(needed))
        pairs = build_messages(changes, subs, pools, readings)
        if not pairs:
            return 0
        settings = self.feed.settings
        await anyio.to_thread.run_sync(
            lambda: self.feed.hooks.enqueue(
                pairs,
                lanes=settings.webhook_lanes,
                max_pending=settings.webhook_max_pending,
                now_ms=now_ms(),
            )
        )
        self.feed.metrics.webhook_messages_queued.inc(len(pairs))
        self.feed.wakeup.set()
        return len(pairs)

    async def process(self, entries: Sequence[Entry]) -> int:
        """Queue the messages of ``entries``, then acknowledge them; returns messages queued."""
        if not entries:
            return 0
        queued = 0
        subs = await self.feed.subscriptions.get()
        if subs:
            changes = changes_of(self.outbox.namespace, self.outbox.decode(entries))
            queued = await self.messages_of(changes, subs)
        await self.outbox.ack(GROUP, [i for i, _ in entries])
        return queued

    async def read(self, start: str, block_ms: int | None) -> list[Entry]:
        limiter = self.feed.blocking
        count = self.feed.settings.webhook_batch
        if block_ms is not None:
            try:
                limiter.acquire_nowait()
            except anyio.WouldBlock:
                entries = await self.outbox.read_group(GROUP, CONSUMER, start=start, count=count)
                if not entries:
                    await anyio.sleep(block_ms / 1000)
                return entries
            try:
                return await self.outbox.read_group(
                    GROUP, CONSUMER, start=start, count=count, block_ms=block_ms
                )
            finally:
                limiter.release()
        return await self.outbox.read_group(GROUP, CONSUMER, start=start, count=count)

    async def start(self) -> None:
        """Join the group (new: from the end of the stream) and redo what is pending."""
        await self.outbox.create_group(GROUP, start="$")
        while entries := await self.read("0", None):
            await self.process(entries)

    async def drain_once(self) -> int:
        """Everything readable now, without blocking; returns messages queued."""
        await self.start()
        queued = 0
        while entries := await self.read(">", None):
            queued += await self.process(entries)
        return queued

    async def run(self, block_ms: int) -> None:
        backoff = 0.5
        recovering = True
        while True:
            try:
                if recovering:
                    await self.start()
                    recovering = False
                await self.process(await self.read(">", block_ms))
                backoff = 0.5
            except Exception as exc:  # keep going; its entries stay pending and are redone
                log.warning(
                    "webhooks: domain %s failed: %r; retrying in %.1fs",
                    self.outbox.domain,
                    exc,
                    backoff,
                    exc_info=True,
                )
                recovering = True
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


class WebhookFeed:
    """Every domain's consumer and every subscription's sender of one process."""

    def __init__(
        self, store: RedisStockStore, engine: Engine, metrics: Metrics, settings: Settings
    ) -> None:
        self.store = store
        self.hooks = WebhookStore(engine)
        self.metrics = metrics
        self.settings = settings
        self.subscriptions = SubscriptionCache(self.hooks, settings.namespace)
        self.wakeup = Wakeup()
        self.blocking = anyio.CapacityLimiter(BLOCKING_READS)
        self.policy = policy_of(settings)
        self.retry = RetryPolicy(
            settings.webhook_max_attempts,
            settings.webhook_retry_base_seconds,
            settings.webhook_retry_max_seconds,
        )

    def consumer(self, domain: str) -> FeedConsumer:
        return FeedConsumer(self, self.store.outbox_of(domain))

    async def run(self, block_ms: int = 1000) -> None:
        timeout = httpx.Timeout(self.settings.webhook_timeout_seconds)
        limits = httpx.Limits(max_connections=self.settings.webhook_max_subscriptions * 2)
        async with (
            httpx.AsyncClient(
                timeout=timeout, limits=limits, follow_redirects=False, trust_env=False
            ) as client,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(self._consume, block_ms)
            tg.start_soon(self._send, client)
            tg.start_soon(self._prune)

    async def _consume(self, block_ms: int) -> None:
        started: set[str] = set()
        async with anyio.create_task_group() as tg:
            while True:
                try:
                    domains = await self.store.domains(fresh=True)
                except RedisError as exc:
                    log.warning("webhooks: the list of domains was not read: %s", exc)
                    domains = ()
                for domain in domains:
                    if domain not in started:
                        started.add(domain)
                        tg.start_soon(self.consumer(domain).run, block_ms)
                await anyio.sleep(RESCAN_SECONDS)

    async def _send(self, client: httpx.AsyncClient) -> None:
        running: dict[str, tuple[Subscription, anyio.CancelScope]] = {}

        async def sender(sub: Subscription, scope: anyio.CancelScope) -> None:
            with scope:
                await Sender(
                    sub,
                    self.hooks,
                    client,
                    self.policy,
                    self.retry,
                    self.metrics,
                    self.wakeup,
                    self.settings.webhook_lanes,
                ).run()

        async with anyio.create_task_group() as tg:
            while True:
                try:
                    subs = {s.id: s for s in await self.subscriptions.get(fresh=True)}
                except Exception:
                    log.warning("webhooks: subscriptions not read", exc_info=True)
                    subs = {s.id: s for s, _ in running.values()}
                for sub_id in list(running):
                    if sub_id not in subs:
                        running.pop(sub_id)[1].cancel()
                for sub_id, sub in subs.items():
                    if sub_id not in running:
                        scope = anyio.CancelScope()
                        running[sub_id] = (sub, scope)
                        tg.start_soon(sender, sub, scope)
                await anyio.sleep(REFRESH_SECONDS)

    async def _prune(self) -> None:
        keep_ms = self.settings.webhook_retention_seconds * 1000
        while True:
            try:
                await anyio.to_thread.run_sync(self.hooks.prune, now_ms() - keep_ms)
            except Exception:
                log.warning("webhooks: old messages not pruned", exc_info=True)
            await anyio.sleep(PRUNE_SECONDS)


def webhooks_lease(store: RedisStockStore) -> Lease:
    return Lease(store.client, store.keys.lease("webhooks"), lease_seconds(LEASE_INTERVAL_SECONDS))


async def run_webhooks(
    store: RedisStockStore,
    engine: Engine,
    metrics: Metrics,
    settings: Settings,
    *,
    block_ms: int = 1000,
    lease: Lease | None = None,
) -> None:
    """The feed, in the process that holds the ``webhooks`` lease (every process when None:
    tests), until cancelled; the lease is released at the end."""
    feed = WebhookFeed(store, engine, metrics, settings)
    if lease is None:
        await feed.run(block_ms)
        return
    try:
        while True:
            if await _hold(lease):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(feed.run, block_ms)
                    while True:
                        await anyio.sleep(lease.ttl_seconds / 3)
                        if not await _hold(lease):
                            log.warning("webhooks: lease lost; another process takes over")
                            break
                    tg.cancel_scope.cancel()
            await anyio.sleep(LEASE_INTERVAL_SECONDS)
    finally:
        with anyio.CancelScope(shield=True):
            await lease.release()


async def _hold(lease: Lease) -> bool:
    try:
        return await lease.hold()
    except RedisError as exc:
        log.warning("webhooks: lease not checked: %s", exc)
        return False
