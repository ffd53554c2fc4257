"""API keys through HTTP: 401 without a valid key, 403 outside scope or bound locations."""

from __future__ import annotations

import secrets

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from stocksync.api.deps import Services
from tests.support.api import KeyFactory, Seed, as_key


@pytest.mark.parametrize(
    "header", [None, "Bearer nonsense", "Bearer ssk_abc_def", "Basic dXNlcjpwYXNz"]
)
async def test_requests_without_a_valid_key_are_401(
    anon: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    r = await anon.get("/v1/locations", headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert r.headers["content-type"] == "application/problem+json"


async def test_key_without_scope_is_403_and_changes_nothing(
    app: FastAPI, make_key: KeyFactory, seed: Seed, client: httpx.AsyncClient, sku: str
) -> None:
    await seed(sku, 5)
    async with as_key(app, make_key("read")) as reader:
        assert (await reader.get(f"/v1/stock/store-a/{sku}")).status_code == 200
        body = {
            "reservation_id": "r1",
            "channel": "web",
            "lines": [{"sku": sku, "location_id": "store-a", "qty": 1}],
        }
        r = await reader.post("/v1/reservations", json=body)
        assert r.status_code == 403
        assert r.json()["code"] == "forbidden"
    assert (await client.get(f"/v1/stock/store-a/{sku}")).json()["reserved"] == 0


async def test_location_bound_key_cannot_touch_other_locations(
    app: FastAPI, make_key: KeyFactory, seed: Seed, client: httpx.AsyncClient, sku: str
) -> None:
    await seed(sku, 5, "store-a")
    await seed(sku, 5, "store-b")
    async with as_key(app, make_key("read,reserve", "store-a")) as store_a:
        assert (await store_a.get(f"/v1/stock/store-a/{sku}")).status_code == 200
        assert (await store_a.get(f"/v1/stock/store-b/{sku}")).status_code == 403
        body = {
            "reservation_id": "r-b",
            "channel": "pos",
            "lines": [{"sku": sku, "location_id": "store-b", "qty": 1}],
        }
        assert (await store_a.post("/v1/reservations", json=body)).status_code == 403
        availability = (await store_a.get("/v1/availability", params={"sku": sku})).json()
        assert [loc["location_id"] for loc in availability["locations"]] == ["store-a"]
        listed = (await store_a.get("/v1/locations")).json()["locations"]
        assert [loc["location_id"] for loc in listed] == ["store-a"]
    # a reservation at store-b, made by another key, does not exist for the store-a key: 404
    # as for a missing one, so its id cannot be probed
    body = {
        "reservation_id": "r-b2",
        "channel": "web",
        "lines": [{"sku": sku, "location_id": "store-b", "qty": 1}],
    }
    assert (await client.post("/v1/reservations", json=body)).status_code == 201
    async with as_key(app, make_key("read,reserve", "store-a")) as store_a:
        for r in (
            await store_a.get("/v1/reservations/r-b2"),
            await store_a.post("/v1/reservations/r-b2/release"),
            await store_a.get("/v1/reservations/r-missing"),
        ):
            assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert (await client.get(f"/v1/stock/store-b/{sku}")).json()["reserved"] == 1


async def test_revoked_key_is_refused(app: FastAPI, services: Services) -> None:
    key, principal = services.api_keys.create("temp", "read")
    async with as_key(app, key) as c:
        assert (await c.get("/v1/locations")).status_code == 200
        assert services.api_keys.revoke(principal.key_id)
        assert (await c.get("/v1/locations")).status_code == 401


async def test_only_the_hash_of_a_key_is_stored(services: Services) -> None:
    key, principal = services.api_keys.create("audit", "read")
    rows = {row.key_id: row for row in services.api_keys.list()}
    stored = rows[principal.key_id]
    assert key.split("_", 2)[2] not in (stored.secret_hash, stored.name, stored.scopes)
    assert len(stored.secret_hash) == 64


async def test_unknown_keys_are_refused_in_memory(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, services: Services
) -> None:
    assert (await client.get("/v1/locations")).status_code == 200  # the key snapshot is loaded
    cached = services.api_keys.cached_keys
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(services.engine, "before_cursor_execute", record)
    try:
        for i in range(300):
            key_id = secrets.token_hex(6) if i % 3 else "a" * 8192
            headers = {"Authorization": f"Bearer ssk_{key_id}_{secrets.token_urlsafe(24)}"}
            r = await anon.get("/v1/locations", headers=headers)
            assert r.status_code == 401
    finally:
        event.remove(services.engine, "before_cursor_execute", record)
    assert statements == []
    assert services.api_keys.cached_keys == cached
