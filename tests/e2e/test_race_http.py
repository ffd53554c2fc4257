"""Races through a real uvicorn server (``stocksync serve`` in a subprocess)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from stocksync.store.embedded import EmbeddedRedis
from tests.support.serve import running_serve, serve_env

pytestmark = pytest.mark.slow


@dataclass
class Server:
    url: str
    key: str


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    deployment = serve_env(redis_server.url, tmp_path_factory.mktemp("serve"), "race")
    key = deployment.create_key("race", "admin")
    with running_serve(deployment) as url:
        yield Server(url, key)


async def seed(client: httpx.AsyncClient, sku: str, on_hand: int) -> None:
    loc = {"name": "Race store", "kind": "store", "pickup": True, "ship": True}
    assert (await client.put("/v1/locations/store-race", json=loc)).status_code in (200, 201)
    r = await client.put(f"/v1/stock/store-race/{sku}", json={"on_hand": on_hand})
    assert r.status_code == 200


def reservation(rid: str, sku: str) -> dict[str, object]:
    return {
        "reservation_id": rid,
        "channel": "web",
        "ttl_seconds": 600,
        "lines": [{"sku": sku, "location_id": "store-race", "qty": 1}],
    }


def api(server: Server, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=60,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def test_race_400_clients_for_50_units_has_exactly_50_winners(server: Server) -> None:
    sku = "RACE-" + uuid.uuid4().hex[:8]
    async with api(server, 400) as client:
        await seed(client, sku, 50)
        start = asyncio.Event()

        async def attempt(i: int) -> httpx.Response:
            await start.wait()
            return await client.post("/v1/reservations", json=reservation(f"{sku}-{i}", sku))

        tasks = [asyncio.create_task(attempt(i)) for i in range(400)]
        start.set()
        responses = await asyncio.gather(*tasks)
        outcomes = Counter(
            (r.status_code, r.json().get("code", r.json().get("state"))) for r in responses
        )
        assert outcomes == {(201, "held"): 50, (409, "insufficient_stock"): 350}
        position = (await client.get(f"/v1/stock/store-race/{sku}")).json()
        assert (position["on_hand"], position["reserved"], position["available"]) == (50, 50, 0)


async def test_race_idempotent_retries_hold_once(server: Server) -> None:
    sku = "RETRY-" + uuid.uuid4().hex[:8]
    async with api(server, 50) as client:
        await seed(client, sku, 5)
        start = asyncio.Event()

        async def attempt() -> httpx.Response:
            await start.wait()
            return await client.post("/v1/reservations", json=reservation("retry-1-" + sku, sku))

        tasks = [asyncio.create_task(attempt()) for _ in range(50)]
        start.set()
        responses = await asyncio.gather(*tasks)
        assert Counter(r.status_code for r in responses) == {201: 1, 200: 49}
        assert len({r.json()["created_at"] for r in responses}) == 1
        position = (await client.get(f"/v1/stock/store-race/{sku}")).json()
        assert position["reserved"] == 1
