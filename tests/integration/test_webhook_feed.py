"""The webhook feed on a real server, SQL queue and HTTP receiver: coalescing, pools, ordered
at-least-once delivery through failures and timeouts, dead letters and replay."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from sqlalchemy import text
from sqlalchemy.engine import Engine

from stocksync.config import Settings
from stocksync.domain.model import Disposition, Line
from stocksync.domain.returns import ReturnLine
from stocksync.metrics import Metrics
from stocksync.store.redis_store import RedisStockStore
from stocksync.webhooks.subscriptions import DEAD, DELIVERED, WebhookStore
from stocksync.webhooks.worker import WebhookFeed, run_webhooks
from tests.support.store import Stocked
from tests.support.stub_server import serve_stub
from tests.support.webhook_receiver import Receiver

DEADLINE_SECONDS = 20.0


def feed_settings(namespace: str, **kw: Any) -> Settings:
    options: dict[str, Any] = {
        "namespace": namespace,
        "webhook_allow_private": True,  # the receivers listen on 127.0.0.1
        "webhook_timeout_seconds": 0.5,
        "webhook_retry_base_seconds": 0.05,
        "webhook_retry_max_seconds": 0.2,
    }
    options.update(kw)
    return Settings(**options)


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def bodies(hooks: WebhookStore, sub_id: str) -> list[dict[str, Any]]:
    return [json.loads(q.body) for q in hooks.pending(sub_id, 10_000)]


async def adjust(store: RedisStockStore, sku: str, loc: str, delta: int, n: int) -> None:
    for _ in range(n):
        await store.adjust(
            sku, loc, delta, reason="sale", source="till", source_event_id=uuid.uuid4().hex
        )


async def test_a_burst_of_sales_read_together_is_one_message_with_the_final_value(
    store: RedisStockStore, stocked: Stocked, sku: str, engine: Engine, namespace: str
) -> None:
    await stocked(sku, 100)
    feed = WebhookFeed(store, engine, Metrics(), feed_settings(namespace))
    sub = feed.hooks.create(
        namespace,
        "http://127.0.0.1:9/x",
        ["availability.changed", "stock.out"],
        None,
        None,
        limit=5,
    )
    consumer = feed.consumer("default")
    await consumer.start()  # joins at the end of the stream
    await adjust(store, sku, "store-a", -1, 50)
    assert await consumer.drain_once() == 1
    [message] = bodies(feed.hooks, sub.id)
    assert message["type"] == "availability.changed"
    assert message["data"] | {"at": 0} == {
        "sku": sku,
        "location_id": "store-a",
        "available": 50,
        "previous": 100,
        "seq": message["data"]["seq"],
        "at": 0,
    }
    await adjust(store, sku, "store-a", -1, 50)  # to zero: also stock.out
    assert await consumer.drain_once() == 2
    out = bodies(feed.hooks, sub.id)[1:]
    assert [m["type"] for m in out] == ["availability.changed", "stock.out"]
    assert out[1]["data"]["available"] == 0
    assert out[1]["data"]["seq"] > message["data"]["seq"]


async def test_a_restocked_return_and_a_move_out_of_on_hand_change_availability(
    store: RedisStockStore, stocked: Stocked, sku: str, engine: Engine, namespace: str
) -> None:
    await stocked(sku, 1)
    await store.reserve("sale", "web", [Line(sku, "store-a", 1)], 600)
    await store.fulfill("sale")
    feed = WebhookFeed(store, engine, Metrics(), feed_settings(namespace))
    events = ["availability.changed", "stock.back_in", "stock.out"]
    sub = feed.hooks.create(namespace, "http://127.0.0.1:9/x", events, None, None, limit=5)
    consumer = feed.consumer("default")
    await consumer.start()
    inspect = ReturnLine(sku, "store-a", 1, Disposition.INSPECT)  # not on sale: no message
    await store.record_return("ret-1", [inspect], reservation_id="sale")
    assert await consumer.drain_once() == 0
    await store.move_units(
        sku,
        "store-a",
        1,
        from_bucket="quality_control",
        to_bucket="on_hand",
        reason="inspected",
        source="store",
        source_event_id="qc-1",
    )
    assert await consumer.drain_once() == 2
    restocked = bodies(feed.hooks, sub.id)
    assert [m["type"] for m in restocked] == ["availability.changed", "stock.back_in"]
    assert (restocked[0]["data"]["previous"], restocked[0]["data"]["available"]) == (0, 1)
    await stocked(sku, 0, "store-b")
    till = ReturnLine(sku, "store-b", 2, Disposition.RESTOCK)
    await store.record_return("till-1", [till])  # an unlinked till return, restocked
    await store.move_units(
        sku,
        "store-a",
        1,
        from_bucket="on_hand",
        to_bucket="damaged",
        reason="found-broken",
        source="store",
        source_event_id="d-1",
    )
    assert await consumer.drain_once() == 4
    later = [
        (m["type"], m["data"]["location_id"], m["data"]["available"])
        for m in bodies(feed.hooks, sub.id)[2:]
    ]
    assert sorted(later) == [
        ("availability.changed", "store-a", 0),
        ("availability.changed", "store-b", 2),
        ("stock.back_in", "store-b", 2),
        ("stock.out", "store-a", 0),
    ]


async def test_pool_offered_value_keeps_buffers_back(
    store: RedisStockStore, stocked: Stocked, sku: str, engine: Engine, namespace: str
) -> None:
    await stocked(sku, 10, "store-a")
    await stocked(sku, 10, "store-b")
    keys = store.keys_of("default")
    await store.client.hset(
        keys.pool("web"),
        mapping={
            "name": "Web",
            "channels": '["web"]',
            "strategy": "priority",
            "locs": json.dumps([["store-a", 1, 2], ["store-b", 2, 5]]),
            "updated_at": 0,
        },
    )
    await store.client.sadd(keys.pools, "web")
    feed = WebhookFeed(store, engine, Metrics(), feed_settings(namespace))
    events = ["availability.changed", "stock.out", "stock.back_in", "reservation.held"]
    sub = feed.hooks.create(namespace, "http://127.0.0.1:9/x", events, "web", None, limit=5)
    other = feed.hooks.create(namespace, "http://127.0.0.1:9/y", events, None, ["store-c"], limit=5)
    consumer = feed.consumer("default")
    await consumer.start()
    await adjust(store, sku, "store-a", -3, 3)  # store-a: 1 left, below its buffer of 2
    await consumer.drain_once()
    [message] = bodies(feed.hooks, sub.id)
    assert message["data"] == message["data"] | {
        "sku": sku,
        "pool": "web",
        "available": 5,
        "previous": 13,
    }
    await store.reserve("r-pool", "web", [Line(sku, "store-b", 5)], 600)  # the pool's last 5
    await consumer.drain_once()
    types = [m["type"] for m in bodies(feed.hooks, sub.id)[1:]]
    assert types == ["reservation.held", "availability.changed", "stock.out"]
    assert bodies(feed.hooks, other.id) == []  # store-c only: nothing of these locations


@asynccontextmanager
async def running_feed(
    store: RedisStockStore, engine: Engine, settings: Settings, metrics: Metrics
) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_webhooks(store, engine, metrics, settings, block_ms=100))
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


async def test_receiver_that_fails_times_out_and_recovers_gets_everything_in_order(
    store: RedisStockStore, stocked: Stocked, sku: str, engine: Engine, namespace: str
) -> None:
    await stocked(sku, 100)
    settings = feed_settings(namespace)
    metrics = Metrics()
    hooks = WebhookStore(engine)
    # Requests 0 and 1 fail, request 2 hangs past the client's timeout, then all succeed.
    receiver = Receiver(behaviour=lambda n: {0: "fail", 1: "fail", 2: "hang"}.get(n, "ok"))
    async with serve_stub(receiver) as url, running_feed(store, engine, settings, metrics):
        events = ["availability.changed", "reservation.held", "reservation.confirmed"]
        events.append("reservation.fulfilled")
        sub = hooks.create(namespace, url + "/hook", events, None, None, limit=5)
        receiver.secret = sub.secret
        # The consumer group exists once the feed read the stream: wait for it.
        await until(lambda: _has_group(store), "the feed to join the outbox")
        expected = []
        for step in range(5):
            await adjust(store, sku, "store-a", -1, 1)
            expected.append(99 - step)
            await until(
                lambda v=99 - step: _queued_value(hooks, engine, sub.id, sku, v),
                f"message {step} queued",
            )
        await store.reserve("r1", "web", [Line(sku, "store-a", 2)], 600)
        await store.confirm("r1")
        await store.fulfill("r1")
        await until(lambda: _all_done(engine, sub.id, 8), "every message delivered")
    assert receiver.refused >= 2
    got = receiver.unique()
    assert all(r.verified for r in got)
    values = [r.body["data"]["available"] for r in got if r.body["type"] == "availability.changed"]
    assert values[:5] == expected
    seqs = [r.body["data"]["seq"] for r in got if r.body["type"] == "availability.changed"]
    assert seqs == sorted(seqs)
    states = [r.body["data"]["state"] for r in got if r.body["type"].startswith("reservation.")]
    assert states == ["held", "confirmed", "fulfilled"]
    histogram = metrics.registry.get_sample_value(
        "stocksync_propagation_seconds_count", {"sink": "webhook"}
    )
    assert histogram is not None
    assert histogram >= len(got)


async def _has_group(store: RedisStockStore) -> bool:
    if not await store.client.exists(store.keys.outbox):
        return False
    groups = await store.client.xinfo_groups(store.keys.outbox)
    return any(g["name"] == "webhooks" for g in groups)


def _rows(engine: Engine, sub_id: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            (str(r[0]), str(r[1]))
            for r in conn.execute(
                text(
                    "SELECT status, body FROM webhook_messages WHERE subscription_id = :s "
                    "ORDER BY id"
                ),
                {"s": sub_id},
            )
        ]


async def _queued_value(
    hooks: WebhookStore, engine: Engine, sub_id: str, sku: str, value: int
) -> bool:
    for _, body in _rows(engine, sub_id):
        data = json.loads(body)["data"]
        if data.get("sku") == sku and data.get("available") == value:
            return True
    return False


async def _all_done(engine: Engine, sub_id: str, at_least: int) -> bool:
    rows = _rows(engine, sub_id)
    return len(rows) >= at_least and all(status == DELIVERED for status, _ in rows)


async def test_dead_letter_after_the_last_attempt_then_replay(
    store: RedisStockStore, stocked: Stocked, sku: str, engine: Engine, namespace: str
) -> None:
    await stocked(sku, 10)
    settings = feed_settings(namespace, webhook_max_attempts=3)
    hooks = WebhookStore(engine)
    healthy = False
    receiver = Receiver(behaviour=lambda _: "ok" if healthy else "fail")
    async with serve_stub(receiver) as url, running_feed(store, engine, settings, Metrics()):
        sub = hooks.create(namespace, url, ["availability.changed"], None, None, limit=5)
        receiver.secret = sub.secret
        await until(lambda: _has_group(store), "the feed to join the outbox")
        await store.adjust(sku, "store-a", -4, reason="sale", source="till", source_event_id="d1")
        await until(
            lambda: _async(bool(hooks.messages(namespace, sub.id, DEAD, 10))), "a dead letter"
        )
        [dead] = hooks.messages(namespace, sub.id, DEAD, 10)
        assert dead.attempts == 3
        assert receiver.refused == 3
        assert receiver.accepted == []
        healthy = True
        assert hooks.replay(namespace, sub.id, dead.event_id, 0) == 1
        await until(lambda: _async(bool(receiver.accepted)), "the replayed message")
    [replayed] = receiver.accepted
    assert replayed.webhook_id == dead.event_id
    assert replayed.verified
    assert replayed.body["data"]["available"] == 6


async def _async(value: bool) -> bool:
    return value
