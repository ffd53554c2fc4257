"""/readyz reports each dependency: Redis and the database decide readiness; the scripts and
the ledger copy are reported."""

from __future__ import annotations

import dataclasses

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from stocksync.api.deps import Services
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_copy import LedgerCopy
from tests.support.api import Seed
from tests.support.ports import free_port


async def test_readyz_redis_down_is_503_with_the_redis_error(
    app: FastAPI, services: Services, anon: httpx.AsyncClient
) -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    app.state.services = dataclasses.replace(
        services, store=RedisStockStore(dead, services.settings)
    )
    try:
        r = await anon.get("/readyz")
    finally:
        app.state.services = services
        await dead.aclose()
    assert r.status_code == 503
    body = r.json()
    assert body["ready"] is False
    assert body["checks"] == {"redis": "error: ConnectionError", "database": "ok"}
    assert body["reported"]["ledger_copy"].startswith("error: ")
    assert "127.0.0.1" not in r.text  # /readyz answers anyone: no host names, no paths
    assert (await anon.get("/readyz")).status_code == 200


async def test_readyz_reports_the_ledger_copy_consumer_and_its_lag(
    services: Services, anon: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 3)
    copy = LedgerCopy(
        services.store.outbox, services.ledger, services.metrics, consumer="test-ledger-copy"
    )
    assert await copy.drain_once() > 0
    body = (await anon.get("/readyz")).json()
    assert body["reported"]["ledger_copy"] == "ok"
    details = body["details"]["ledger_copy"]
    assert details["consumers_alive"] == 1
    assert details["consumers"][0]["name"] == "test-ledger-copy"
    assert details["lag_events"] == 0
    await seed(sku, 5)  # one more event the copy has not read
    details = (await anon.get("/readyz")).json()["details"]["ledger_copy"]
    assert details["lag_events"] >= 1
    assert details["lag_seconds"] >= 0


async def test_readyz_reports_a_lost_library_until_a_call_loads_it_again(
    services: Services, anon: httpx.AsyncClient, client: httpx.AsyncClient, sku: str
) -> None:
    await services.store.client.execute_command("FUNCTION", "FLUSH")  # as a restart without data
    r = await anon.get("/readyz")
    assert r.status_code == 200  # a missing library reloads on the first call: not required
    body = r.json()
    assert body["reported"]["scripts"] == "not_loaded"
    assert body["details"]["scripts"]["loaded"] is False
    assert (await client.get(f"/v1/stock/store-a/{sku}")).status_code in (200, 404)
    assert (await anon.get("/readyz")).json()["reported"]["scripts"] == "ok"
