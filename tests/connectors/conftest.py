"""Fixtures for connector tests: the real engine (Redis + SQLite ledger) and vendor stubs
served over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from stocksync.config import Settings
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.writer import SqlLedger
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore
from tests.support.ports import free_port

StubServer = Callable[[ASGIApp], AbstractAsyncContextManager[str]]


@pytest.fixture
def ctx(settings: Settings, store: RedisStockStore) -> EngineContext:
    """What the engine lends a connector: the test's Redis namespace and a fresh ledger (the
    same ``settings`` the in-process app of a test would run with)."""
    engine = make_engine(settings.sqlalchemy_url)
    create_tables(engine)
    return EngineContext(settings, store, engine, SqlLedger(engine), CollectorRegistry())


@pytest.fixture
def stub_server() -> StubServer:
    """Serve an ASGI app (a vendor API stub) with uvicorn on a free loopback port."""

    @asynccontextmanager
    async def serve(asgi_app: ASGIApp) -> AsyncIterator[str]:
        port = free_port()
        config = uvicorn.Config(
            asgi_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        for _ in range(500):  # bounded wait for the listening socket, not a timing assumption
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        assert server.started, "stub server did not start"
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task

    return serve
