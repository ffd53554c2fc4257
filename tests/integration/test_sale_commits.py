"""The sale committer (group commit of fulfilments) against real Redis sales and real databases."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from stocksync.domain.errors import LedgerBusy, LedgerUnavailable
from stocksync.domain.model import Line
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.sale_commits import SaleCommitter
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.ledger.tables import Movement
from stocksync.metrics import Metrics
from stocksync.store.outbox import OutboxEvent
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import Stocked

SALES = 40


async def sales(store: RedisStockStore, stocked: Stocked, sku: str, n: int) -> list[Any]:
    """``n`` fulfilled reservations of one unit each: their sale events, one tuple per sale."""
    await stocked(sku, n)
    for i in range(n):
        await store.reserve(f"r{i}", "pos", [Line(sku, "store-a", 1)], 600)
    return [(await store.fulfill(f"r{i}")).sale_events for i in range(n)]


def commits(engine: Engine) -> list[int]:
    """A list that grows by one for every transaction committed on ``engine``."""
    seen: list[int] = []
    event.listen(engine, "commit", lambda _conn: seen.append(1))
    return seen


def sold_ids(engine: Engine, namespace: str) -> list[str]:
    """Reservation ids of the ``fulfilled`` movements the ledger holds, one per row."""
    m = Movement.__table__.c  # type: ignore[attr-defined]
    stmt = select(m.reservation_id).where(m.namespace == namespace, m.kind == "fulfilled")
    with engine.connect() as conn:
        return sorted(str(r) for r in conn.execute(stmt).scalars())


def second_engine(engine: Engine) -> Engine:
    return make_engine(engine.url.render_as_string(hide_password=False))


async def test_sale_committer_writes_concurrent_sales_in_fewer_transactions(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    sold = await sales(store, stocked, sku, SALES)
    metrics = Metrics()
    committer = SaleCommitter(SqlLedger(engine), observe=metrics.observe_sale_commit)
    transactions = commits(engine)
    reader = second_engine(engine)  # another connection pool: sees only what committed
    acknowledged_unseen: list[str] = []

    async def sell(i: int, events: tuple[OutboxEvent, ...]) -> None:
        await committer.commit(events)
        if f"r{i}" not in sold_ids(reader, namespace):
            acknowledged_unseen.append(f"r{i}")

    try:
        await asyncio.gather(*(sell(i, events) for i, events in enumerate(sold)))
    finally:
        reader.dispose()
        await committer.aclose()
    assert acknowledged_unseen == []
    assert sold_ids(engine, namespace) == sorted(f"r{i}" for i in range(SALES))
    registry = metrics.registry
    assert registry.get_sample_value("stocksync_sale_commit_sales_sum") == SALES
    groups = registry.get_sample_value("stocksync_sale_commit_sales_count")
    assert groups is not None
    assert 1 <= groups < SALES
    if engine.dialect.name == "sqlite":  # one engine transaction per group
        assert len(transactions) == groups
    else:  # one autocommit statement per group, on the committer's own connections
        assert transactions == []
    ok = registry.get_sample_value("stocksync_sale_commit_seconds_count", {"outcome": "ok"})
    assert ok == groups


async def test_sale_committer_refuses_at_once_when_the_queue_is_full(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    sold = await sales(store, stocked, sku, 3)
    committer = SaleCommitter(SqlLedger(engine), group_max=1, queue_max=2)
    # All three arrive in one turn of the loop, before the first commit starts: two fill the
    # queue, the third is refused and queues nothing.
    results = await asyncio.gather(
        *(committer.commit(events) for events in sold), return_exceptions=True
    )
    assert results[:2] == [None, None]
    assert isinstance(results[2], LedgerBusy)
    assert (results[2].status, results[2].code, results[2].retry_after_seconds) == (
        503,
        "ledger_busy",
        1,
    )
    assert sold_ids(engine, namespace) == ["r0", "r1"]
    assert committer.queued == 0
    await committer.commit(sold[2])  # the client's retry of the same sale
    await committer.aclose()
    assert sold_ids(engine, namespace) == ["r0", "r1", "r2"]


@pytest.mark.postgres
async def test_sale_committer_isolates_a_sale_the_database_refuses(
    postgres_url: str, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    """A row PostgreSQL refuses (a too-long value, not an outage) fails its own sale only: the
    group is retried sale by sale."""
    engine = make_engine(postgres_url)
    try:
        create_tables(engine)
        sold = await sales(store, stocked, sku, 4)
        bad = tuple(dataclasses.replace(e, location_id="x" * 10_000) for e in sold[1])
        committer = SaleCommitter(SqlLedger(engine))
        results = await asyncio.gather(
            *(committer.commit(events) for events in (sold[0], bad, sold[2], sold[3])),
            return_exceptions=True,
        )
        assert [type(r).__name__ for r in results] == [
            "NoneType",
            "LedgerUnavailable",
            "NoneType",
            "NoneType",
        ]
        assert isinstance(results[1], LedgerUnavailable)
        assert sold_ids(engine, namespace) == ["r0", "r2", "r3"]
        await committer.aclose()
    finally:
        engine.dispose()
