"""Fixtures for tests through the HTTP API: the real app on the real Redis and SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from stocksync.api.app import create_app
from stocksync.api.deps import Services
from stocksync.config import Settings
from tests.support.api import KeyFactory, Seed


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
async def anon(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://stocksync.test") as c:
        yield c


@pytest.fixture
def seed(client: httpx.AsyncClient) -> Seed:
    """Create a pickup store and count ``on_hand`` units of ``sku`` there, through the API."""

    async def make(sku: str, on_hand: int, location_id: str = "store-a", **loc: object) -> None:
        body = {
            "name": location_id,
            "kind": "store",
            "lat": 52.52,
            "lon": 13.40,
            "pickup": True,
            "ship": True,
            **loc,
        }
        r = await client.put(f"/v1/locations/{location_id}", json=body)
        assert r.status_code in (200, 201), r.text
        r = await client.put(f"/v1/stock/{location_id}/{sku}", json={"on_hand": on_hand})
        assert r.status_code == 200, r.text

    return make
