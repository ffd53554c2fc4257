"""Fixtures for connector tests: the real engine (Redis + SQLite ledger) and vendor stubs
served over real HTTP on loopback."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from stocksync.config import Settings
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.sale_commits import SaleCommitter
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore
from tests.support.stub_server import StubServer, serve_stub


@pytest.fixture
def ctx(settings: Settings, store: RedisStockStore) -> EngineContext:
    """What the engine lends a connector: the test's Redis namespace and a fresh ledger (the
    same ``settings`` the in-process app of a test would run with)."""
    engine = make_engine(settings.sqlalchemy_url)
    create_tables(engine)
    ledger = SqlLedger(engine)
    return EngineContext(
        settings, store, engine, ledger, CollectorRegistry(), SaleCommitter(ledger)
    )


@pytest.fixture
def stub_server() -> StubServer:
    """Serve an ASGI app (a vendor API stub) with uvicorn on a free loopback port."""
    return serve_stub
