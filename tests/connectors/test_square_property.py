"""Property: a history of POS and warehouse events, each delivered 1-3 times in any order,
leaves the same stock as the history applied once in order (DESIGN rules 3 and 7)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from connectors.framework.commands import Adjust, Command, Sale, SetCount
from connectors.framework.pipeline import Pipeline
from stocksync.config import Settings
from stocksync.domain.model import Location
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.sale_commits import SaleCommitter
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore

LOC = "store-a"
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Event:
    """One source event, ``age_ms`` before the example runs (distinct within a history)."""

    kind: str  # count | sale | receipt
    qty: int
    age_ms: int
    source: str  # square (POS) | warehouse


def events(n: int) -> st.SearchStrategy[list[Event]]:
    ages = st.lists(st.integers(1_000, DAY_MS), min_size=n, max_size=n, unique=True)
    kinds = st.lists(st.sampled_from(["count", "sale", "receipt"]), min_size=n, max_size=n)
    qtys = st.lists(st.integers(0, 20), min_size=n, max_size=n)
    sources = st.lists(st.sampled_from(["square", "warehouse"]), min_size=n, max_size=n)
    return st.builds(
        lambda a, k, q, s: [
            Event(kind, qty if kind == "count" else max(1, qty), age, src)
            for age, kind, qty, src in zip(a, k, q, s, strict=True)
        ],
        ages,
        kinds,
        qtys,
        sources,
    )


histories = st.integers(1, 8).flatmap(events)


def command(event: Event, sku: str, event_id: str, now_ms: int) -> Command:
    at = now_ms - event.age_ms
    if event.kind == "count":
        return SetCount(sku, LOC, event.qty, at, event.source, event_id)
    if event.kind == "sale":
        return Sale(sku, LOC, event.qty, event.source, event_id, at)
    return Adjust(sku, LOC, event.qty, "receipt", event.source, event_id, at)


def model(history: Sequence[Event]) -> int:
    """The last count by as_of plus the deltas that happened after it (0 with no count)."""
    counts = [e for e in history if e.kind == "count"]
    last = min(counts, key=lambda e: e.age_ms) if counts else None
    base = 0 if last is None else last.qty
    after = [e for e in history if e.kind != "count" and (last is None or e.age_ms < last.age_ms)]
    return base + sum(e.qty if e.kind == "receipt" else -e.qty for e in after)


async def connect(redis_url: str, settings: Settings) -> tuple[Redis, Pipeline]:
    client = Redis.from_url(redis_url, decode_responses=True)
    store = RedisStockStore(client, settings)
    await store.upsert_location(Location(LOC, "Store A", "store", 52.52, 13.40, True, True))
    engine = make_engine(settings.sqlalchemy_url)
    create_tables(engine)
    ledger = SqlLedger(engine)
    ctx = EngineContext(settings, store, engine, ledger, CollectorRegistry(), SaleCommitter(ledger))
    return client, Pipeline("property", ctx)


def test_history_delivered_repeatedly_out_of_order_equals_in_order_once(
    redis_url: str, settings: Settings
) -> None:
    # One event loop and client for all examples (hypothesis drives a sync test); a fresh
    # SKU per example keeps the examples apart on the test's namespace.
    with asyncio.Runner() as runner:
        client, pipeline = runner.run(connect(redis_url, settings))
        store = pipeline.ctx.store

        async def apply_all(commands: Sequence[Command]) -> None:
            for cmd in commands:
                await pipeline.apply("property", repr(cmd), [cmd])

        @examples(
            max_examples=500,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(history=histories, data=st.data())
        def check(history: list[Event], data: st.DataObject) -> None:
            run = uuid.uuid4().hex[:12]
            now_ms = int(time.time() * 1000)
            shuffled_sku, ordered_sku = f"P-{run}-x", f"P-{run}-o"
            once = [command(e, shuffled_sku, f"{run}-{i}", now_ms) for i, e in enumerate(history)]
            copies = data.draw(st.lists(st.integers(1, 3), min_size=len(once), max_size=len(once)))
            deliveries = [cmd for cmd, n in zip(once, copies, strict=True) for _ in range(n)]
            deliveries = data.draw(st.permutations(deliveries))
            oldest_first = sorted(range(len(history)), key=lambda i: -history[i].age_ms)
            in_order = [
                replace(once[i], sku=ordered_sku, source_event_id=f"{once[i].source_event_id}-o")
                for i in oldest_first
            ]

            runner.run(apply_all(deliveries))
            runner.run(apply_all(in_order))

            shuffled = runner.run(store.position(shuffled_sku, LOC)).on_hand
            ordered = runner.run(store.position(ordered_sku, LOC)).on_hand
            assert shuffled == ordered == model(history)

        check()
        runner.run(client.aclose())
