"""Operations endpoints: health, readiness, metrics, OpenAPI, availability."""

from __future__ import annotations

import dataclasses

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from stocksync.api.deps import Services
from stocksync.store.redis_store import RedisStockStore
from tests.support.api import Seed
from tests.support.ports import free_port


async def test_healthz_and_readyz(anon: httpx.AsyncClient) -> None:
    assert (await anon.get("/healthz")).json() == {"status": "ok"}
    r = await anon.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] is True
    assert body["checks"] == {"redis": "ok", "database": "ok"}  # required: decide `ready`
    # reported only: the app loaded its function library at start; no worker runs in these tests
    assert body["reported"] == {"scripts": "ok", "ledger_copy": "absent"}
    assert body["details"]["database"]["dialect"] == "sqlite"
    assert body["details"]["scripts"]["loaded"] is True
    assert body["details"]["scripts"]["library"].startswith("stocksync_")


async def test_metrics_count_reservations_by_channel_and_outcome(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 1)
    for rid in ("m1", "m2"):
        body = {
            "reservation_id": rid,
            "channel": "chat",
            "lines": [{"sku": sku, "location_id": "store-a", "qty": 1}],
        }
        await client.post("/v1/reservations", json=body)
    text = (await anon.get("/metrics")).text
    assert 'stocksync_reservations_total{channel="chat",outcome="held"} 1.0' in text
    assert 'stocksync_reservations_total{channel="chat",outcome="insufficient_stock"} 1.0' in text
    assert 'stocksync_script_seconds_count{script="reserve"} 2.0' in text
    assert (
        'stocksync_http_requests_total{method="POST",route="/v1/reservations",status="201"} 1.0'
        in text
    )


async def test_openapi_documents_the_v1_api(anon: httpx.AsyncClient) -> None:
    spec = (await anon.get("/openapi.json")).json()
    for path in (
        "/v1/reservations",
        "/v1/reservations/{reservation_id}/fulfill",
        "/v1/stock/{location_id}/{sku}",
        "/v1/availability",
        "/v1/locations",
    ):
        assert path in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


async def test_availability_nearest_first_with_distance(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 2, "store-mitte", lat=52.5219, lon=13.4132)
    await seed(sku, 3, "store-potsdam", lat=52.3989, lon=13.0657)
    await seed(sku, 4, "wh-east", lat=52.50, lon=13.60, pickup=False, kind="warehouse")
    r = await client.get("/v1/availability", params={"sku": sku, "near": "52.40,13.07"})
    body = r.json()
    assert [loc["location_id"] for loc in body["locations"]] == [
        "store-potsdam",
        "store-mitte",
        "wh-east",
    ]
    assert body["locations"][0]["distance_km"] < 1
    assert body["total_available"] == 9
    r = await client.get(
        "/v1/availability",
        params={"sku": sku, "near": "52.40,13.07", "radius_km": 10, "pickup": "true"},
    )
    assert [loc["location_id"] for loc in r.json()["locations"]] == ["store-potsdam"]


async def test_redis_outage_is_a_503_problem(
    app: FastAPI, services: Services, client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 1)
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    app.state.services = dataclasses.replace(
        services, store=RedisStockStore(dead, services.settings)
    )
    try:
        r = await client.get(f"/v1/stock/store-a/{sku}")
    finally:
        app.state.services = services
        await dead.aclose()
    assert r.status_code == 503
    assert r.json()["code"] == "store_unavailable"
    assert r.headers["Retry-After"] == "1"
    assert (await client.get(f"/v1/stock/store-a/{sku}")).status_code == 200


async def test_undeclared_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    r = await client.request("TRACE", "/v1/locations")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["Allow"] == "GET"
    r = await client.delete("/v1/stock/store-a/X")
    assert set(r.headers["Allow"].split(", ")) == {"GET", "PUT"}


async def test_openapi_documents_problems_with_their_schema(anon: httpx.AsyncClient) -> None:
    spec = (await anon.get("/openapi.json")).json()
    assert {"type", "title", "status", "detail", "code"} <= set(
        spec["components"]["schemas"]["Problem"]["required"]
    )
    responses = spec["paths"]["/v1/stock/{location_id}/{sku}"]["put"]["responses"]
    for status in ("400", "401", "403", "404", "409", "413", "422", "503"):
        content = responses[status]["content"]
        assert content == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
