"""Real races against a real Redis: many connections, one script call each, no oversell."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from stocksync.config import Settings
from stocksync.domain.errors import InsufficientStock
from stocksync.domain.model import Line, Position, ReserveResult, State, StockChangeResult
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.reservations import TransitionResult
from tests.support.store import Stocked, outbox

TASKS = 200
T = TypeVar("T")


@pytest.fixture
async def wide_store(redis_url: str, namespace: str) -> AsyncIterator[RedisStockStore]:
    """The test's namespace through a pool with a connection per task, warmed up front."""
    pool = BlockingConnectionPool.from_url(
        redis_url, max_connections=TASKS, timeout=10, decode_responses=True
    )
    client = Redis(connection_pool=pool)
    await asyncio.gather(*(client.ping() for _ in range(TASKS)))
    yield RedisStockStore(client, Settings(namespace=namespace))
    await client.aclose()
    await pool.disconnect()


async def race(count: int, call: Callable[[int], Awaitable[T]]) -> list[T | BaseException]:
    """Start ``count`` calls together (behind one gate) and collect results or errors."""
    gate = asyncio.Event()

    async def one(i: int) -> T:
        await gate.wait()
        return await call(i)

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await asyncio.sleep(0)  # let every task reach the gate
    gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_concurrent_reserve_has_exactly_on_hand_winners(
    wide_store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 50)
    line = [Line(sku, "store-a", 1)]
    outcomes = await race(
        TASKS, lambda i: wide_store.reserve(f"r{i}", "web", line, ttl_seconds=600)
    )
    won = [o for o in outcomes if isinstance(o, ReserveResult)]
    lost = [o for o in outcomes if isinstance(o, InsufficientStock)]
    assert (len(won), len(lost)) == (50, TASKS - 50)
    assert all(o.created for o in won)
    assert all(e.short_lines[0].available == 0 for e in lost)
    position = await wide_store.position(sku, "store-a")
    assert position == Position(sku, "store-a", 50, 50, 0)
    assert position.available == 0
    assert await wide_store.client.zcard(wide_store.keys.active) == 50
    assert sum(e["kind"] == "held" for e in await outbox(wide_store, sku)) == 50


async def test_concurrent_reserve_retries_create_once(
    wide_store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 10)
    line = [Line(sku, "store-a", 3)]
    outcomes = await race(50, lambda _: wide_store.reserve("same", "web", line, ttl_seconds=600))
    results = [o for o in outcomes if isinstance(o, ReserveResult)]
    assert len(results) == 50, [o for o in outcomes if not isinstance(o, ReserveResult)]
    assert sum(r.created for r in results) == 1
    assert len({r.reservation.created_at_ms for r in results}) == 1
    assert (await wide_store.position(sku, "store-a")).reserved == 3
    assert [e["kind"] for e in await outbox(wide_store, sku)].count("held") == 1


async def test_concurrent_adjust_retries_apply_once(
    wide_store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 10)
    outcomes = await race(
        50,
        lambda _: wide_store.adjust(
            sku, "store-a", -4, reason="sale", source="pos", source_event_id="till-7"
        ),
    )
    results = [o for o in outcomes if isinstance(o, StockChangeResult)]
    assert len(results) == 50
    assert sum(not r.replayed for r in results) == 1
    assert {r.seq for r in results} == {results[0].seq}
    assert (await wide_store.position(sku, "store-a")).on_hand == 6


async def test_concurrent_release_and_reserve_never_oversell(
    wide_store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 20)
    line = [Line(sku, "store-a", 1)]
    for i in range(20):
        await wide_store.reserve(f"old{i}", "web", line, ttl_seconds=600)

    async def step(i: int) -> object:
        if i % 2:
            return await wide_store.release(f"old{i // 2}")
        return await wide_store.reserve(f"new{i}", "web", line, ttl_seconds=600)

    outcomes = await race(40, step)
    released = [o for o in outcomes if isinstance(o, TransitionResult)]
    won = [o for o in outcomes if isinstance(o, ReserveResult)]
    lost = [o for o in outcomes if isinstance(o, InsufficientStock)]
    assert (len(released), len(won) + len(lost)) == (20, 20)
    assert all(r.reservation.state is State.RELEASED for r in released)
    position = await wide_store.position(sku, "store-a")
    assert position.reserved == len(won)  # every old hold was released
    assert position.available_raw >= 0
    assert await wide_store.client.zcard(wide_store.keys.active) == len(won)
