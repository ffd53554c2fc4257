"""Channel pools through HTTP: configuration (refusals change nothing), the pool read of
GET /v1/availability and batch availability, in two stock domains."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stocksync.domain.model import MAX_POOL_LOCATIONS
from tests.support.api import KeyFactory, as_key, hold, post_ok

B = "/v1/availability/batch"


async def put_location(
    client: httpx.AsyncClient, location_id: str, domain: str = "default", **extra: Any
) -> None:
    body = {"name": location_id, "kind": "store", "domain": domain, "ship": True, **extra}
    r = await client.put(f"/v1/locations/{location_id}", json=body)
    assert r.status_code in (200, 201), r.text


async def count(client: httpx.AsyncClient, location_id: str, sku: str, on_hand: int) -> None:
    r = await client.put(f"/v1/stock/{location_id}/{sku}", json={"on_hand": on_hand})
    assert r.status_code == 200, r.text


def pool_body(*entries: tuple[str, int, int], **extra: Any) -> dict[str, Any]:
    return {
        "name": "Web Berlin",
        "channels": ["web", "app"],
        "strategy": "priority",
        "locations": [{"location_id": i, "priority": p, "buffer": b} for i, p, b in entries],
        **extra,
    }


async def berlin(client: httpx.AsyncClient, sku: str) -> None:
    """A warehouse and two stores in domain 'de' with stock, and the pool web-berlin."""
    for loc in ("wh-berlin", "store-mitte", "store-kreuzberg"):
        await put_location(client, loc, "de")
    await count(client, "wh-berlin", sku, 20)
    await count(client, "store-mitte", sku, 4)
    await count(client, "store-kreuzberg", sku, 1)
    body = pool_body(("wh-berlin", 0, 0), ("store-mitte", 10, 2), ("store-kreuzberg", 10, 2))
    r = await client.put("/v1/pools/web-berlin", json=body)
    assert r.status_code == 201, r.text


async def test_a_pool_is_created_replaced_listed_and_read(client: httpx.AsyncClient) -> None:
    for loc in ("wh-1", "store-b", "store-a"):
        await put_location(client, loc, "de")
    r = await client.put("/v1/pools/web-de", json=pool_body(("store-b", 5, 1), ("wh-1", 0, 0)))
    assert r.status_code == 201, r.text
    assert r.json() == {
        "pool_id": "web-de",
        "name": "Web Berlin",
        "channels": ["web", "app"],
        "strategy": "priority",
        "locations": [
            {"location_id": "wh-1", "priority": 0, "buffer": 0},
            {"location_id": "store-b", "priority": 5, "buffer": 1},
        ],
        "domain": "de",
    }
    replaced = pool_body(("store-a", 1, 3), strategy="fewest_splits", channels=["web"])
    r = await client.put("/v1/pools/web-de", json=replaced)
    assert r.status_code == 200, r.text
    got = await client.get("/v1/pools/web-de")
    assert got.status_code == 200
    assert got.json() == r.json()
    assert got.json()["strategy"] == "fewest_splits"
    assert got.json()["locations"] == [{"location_id": "store-a", "priority": 1, "buffer": 3}]
    listed = (await client.get("/v1/pools")).json()["pools"]
    assert [p["pool_id"] for p in listed] == ["web-de"]
    missing = await client.get("/v1/pools/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (pool_body(("store-a", 0, 0), ("store-a", 1, 0)), 422, "validation_error"),
        (pool_body(("store-a", 0, 0), channels=["web", "tiktok"]), 422, "validation_error"),
        (pool_body(("store-a", 0, 0), channels=[]), 422, "validation_error"),
        (pool_body(("store-a", 0, 0), channels=["web", "web"]), 422, "validation_error"),
        (pool_body(("store-a", 10_001, 0)), 422, "validation_error"),
        (pool_body(("store-a", 0, 1_000_001)), 422, "validation_error"),
        (pool_body(("store-a", 0, -1)), 422, "validation_error"),
        (pool_body(("store-a", 0, 0), strategy="cheapest"), 422, "validation_error"),
        (pool_body(("store-a", 0, 0), colour="red"), 422, "validation_error"),
        (pool_body(), 422, "validation_error"),
        (
            pool_body(*((f"s-{i}", 0, 0) for i in range(MAX_POOL_LOCATIONS + 1))),
            422,
            "validation_error",
        ),
        (pool_body(("store-a", 0, 0), ("ghost", 1, 0)), 404, "not_found"),
        (pool_body(("store-a", 0, 0), ("vienna-1", 1, 0)), 409, "cross_domain"),
        (pool_body(("vienna-1", 0, 0)), 409, "domain_change"),
    ],
)
async def test_a_refused_pool_changes_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    await put_location(client, "store-a", "de")
    await put_location(client, "vienna-1", "at")
    first = pool_body(("store-a", 0, 1))
    assert (await client.put("/v1/pools/web-de", json=first)).status_code == 201
    before = (await client.get("/v1/pools/web-de")).json()

    for pool_id in ("web-de", "fresh"):
        r = await client.put(f"/v1/pools/{pool_id}", json=body)
        if (pool_id, code) == ("fresh", "domain_change"):  # a new pool may be in 'at'
            assert r.status_code == 201, r.text
            continue
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == code
    assert (await client.get("/v1/pools/web-de")).json() == before
    if code != "domain_change":
        assert (await client.get("/v1/pools/fresh")).status_code == 404
        assert [p["pool_id"] for p in (await client.get("/v1/pools")).json()["pools"]] == ["web-de"]


async def test_pools_need_admin_to_write_and_read_to_read(
    app: FastAPI, client: httpx.AsyncClient, make_key: KeyFactory, sku: str
) -> None:
    await berlin(client, sku)
    async with as_key(app, make_key("read,reserve")) as reader:
        r = await reader.put("/v1/pools/web-x", json=pool_body(("wh-berlin", 0, 0)))
        assert r.status_code == 403
        assert (await reader.get("/v1/pools/web-x")).status_code == 404
        assert (await reader.get("/v1/pools/web-berlin")).status_code == 200
        r = await reader.get("/v1/availability", params={"sku": sku, "pool": "web-berlin"})
        assert r.status_code == 200
    # A key bound to some of the pool's locations sees neither the pool nor its numbers.
    async with as_key(app, make_key("read", "store-mitte")) as bound:
        assert (await bound.get("/v1/pools")).json()["pools"] == []
        assert (await bound.get("/v1/pools/web-berlin")).status_code == 403
        r = await bound.get("/v1/availability", params={"sku": sku, "pool": "web-berlin"})
        assert r.status_code == 403
        r = await bound.post(B, json={"pool": "web-berlin", "skus": [sku]})
        assert r.status_code == 403
        r = await bound.post(B, json={"location_id": "store-mitte", "skus": [sku]})
        assert r.json() == {"location_id": "store-mitte", "availability": {sku: 4}}
    every = "wh-berlin,store-mitte,store-kreuzberg"
    async with as_key(app, make_key("read", every)) as bound_to_all:
        assert len((await bound_to_all.get("/v1/pools")).json()["pools"]) == 1
        r = await bound_to_all.post(B, json={"pool": "web-berlin", "skus": [sku]})
        assert r.json() == {"pool": "web-berlin", "availability": {sku: 22}}


async def test_a_pool_read_shows_what_each_location_offers(
    client: httpx.AsyncClient, sku: str
) -> None:
    await berlin(client, sku)
    await post_ok(client, "/v1/reservations", hold("h-1", sku, "wh-berlin", 5))

    r = await client.get("/v1/availability", params={"sku": sku, "pool": "web-berlin"})

    assert r.status_code == 200, r.text
    assert r.json() == {
        "sku": sku,
        "pool": "web-berlin",
        "available": 15 + 2 + 0,
        "locations": [
            {"location_id": "wh-berlin", "available": 15, "buffer": 0, "offered": 15},
            {"location_id": "store-kreuzberg", "available": 1, "buffer": 2, "offered": 0},
            {"location_id": "store-mitte", "available": 4, "buffer": 2, "offered": 2},
        ],
    }
    # Without `pool` the route answers as before.
    plain = (await client.get("/v1/availability", params={"sku": sku})).json()
    assert plain["total_available"] == 15 + 4 + 1
    for extra in ({"near": "52.5,13.4"}, {"channel": "web"}, {"pickup": "true"}):
        r = await client.get("/v1/availability", params={"sku": sku, "pool": "web-berlin", **extra})
        assert r.status_code == 422, r.text
    r = await client.get("/v1/availability", params={"sku": sku, "pool": "nope"})
    assert r.status_code == 404


async def test_batch_availability_equals_the_single_reads(
    client: httpx.AsyncClient, sku: str
) -> None:
    await berlin(client, sku)
    skus = [f"{sku}-{i:03d}" for i in range(200)]
    for i, each in enumerate(skus[:30]):
        await count(client, ("wh-berlin", "store-mitte", "store-kreuzberg")[i % 3], each, i)

    r = await client.post(B, json={"pool": "web-berlin", "skus": skus})
    assert r.status_code == 200, r.text
    batch = r.json()["availability"]
    assert list(batch) == skus
    singles = {}
    for each in skus:
        one = await client.get("/v1/availability", params={"sku": each, "pool": "web-berlin"})
        singles[each] = one.json()["available"]
    assert batch == singles
    assert sum(batch.values()) > 0

    r = await client.post(B, json={"location_id": "store-mitte", "skus": skus})
    at_mitte = r.json()["availability"]
    assert r.json()["location_id"] == "store-mitte"
    for each in skus[:30]:
        position = (await client.get(f"/v1/stock/store-mitte/{each}")).json()
        assert at_mitte[each] == max(0, position["available"])


@pytest.mark.parametrize(
    "body",
    [
        {"skus": ["A"]},
        {"pool": "web-berlin", "location_id": "wh-berlin", "skus": ["A"]},
        {"pool": "web-berlin", "skus": ["A", "A"]},
        {"pool": "web-berlin", "skus": []},
        {"pool": "web-berlin", "skus": [f"S-{i}" for i in range(501)]},
        {"pool": "web-berlin", "skus": ["bad sku"]},
        {"pool": "web-berlin", "skus": ["A"], "near": "52,13"},
    ],
)
async def test_a_malformed_batch_is_refused(
    client: httpx.AsyncClient, body: dict[str, Any], sku: str
) -> None:
    await berlin(client, sku)
    r = await client.post(B, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"


async def test_pools_in_two_domains_each_read_their_own(
    client: httpx.AsyncClient, sku: str
) -> None:
    await berlin(client, sku)
    await put_location(client, "vienna-1", "at")
    await count(client, "vienna-1", sku, 7)
    r = await client.put("/v1/pools/web-vienna", json=pool_body(("vienna-1", 0, 3)))
    assert r.status_code == 201, r.text
    assert r.json()["domain"] == "at"
    listed = {p["pool_id"]: p["domain"] for p in (await client.get("/v1/pools")).json()["pools"]}
    assert listed == {"web-berlin": "de", "web-vienna": "at"}
    vienna = await client.post(B, json={"pool": "web-vienna", "skus": [sku]})
    berlin_ = await client.post(B, json={"pool": "web-berlin", "skus": [sku]})
    assert vienna.json()["availability"] == {sku: 4}
    assert berlin_.json()["availability"] == {sku: 20 + 2 + 0}
