"""Stock domains through HTTP: locations name their domain, a reservation stays in one domain,
and a reservation id means one reservation across domains (DESIGN rule 2)."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from stocksync.config import Settings
from stocksync.store.redis_store import RedisStockStore
from tests.support.api import hold, position, post_ok


async def put_location(client: httpx.AsyncClient, location_id: str, domain: str) -> None:
    body = {"name": location_id, "kind": "store", "domain": domain}
    r = await client.put(f"/v1/locations/{location_id}", json=body)
    assert r.status_code in (200, 201), r.text


async def count(client: httpx.AsyncClient, location_id: str, sku: str, on_hand: int) -> None:
    r = await client.put(f"/v1/stock/{location_id}/{sku}", json={"on_hand": on_hand})
    assert r.status_code == 200, r.text


async def two_domains(client: httpx.AsyncClient, sku: str) -> None:
    await put_location(client, "berlin-1", "de")
    await put_location(client, "vienna-1", "at")
    await count(client, "berlin-1", sku, 5)
    await count(client, "vienna-1", sku, 5)


async def test_locations_show_their_domain_and_keep_it(client: httpx.AsyncClient) -> None:
    await put_location(client, "berlin-1", "de")
    await put_location(client, "store-x", "default")
    listed = {
        loc["location_id"]: loc["domain"]
        for loc in (await client.get("/v1/locations")).json()["locations"]
    }
    assert listed["berlin-1"] == "de"
    assert listed["store-x"] == "default"
    r = await client.put(
        "/v1/locations/berlin-1", json={"name": "b", "kind": "store", "domain": "at"}
    )
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "domain_change"
    listed = {
        loc["location_id"]: loc["domain"]
        for loc in (await client.get("/v1/locations")).json()["locations"]
    }
    assert listed["berlin-1"] == "de"
    r = await client.put(
        "/v1/locations/odd", json={"name": "o", "kind": "store", "domain": "Not Valid"}
    )
    assert r.status_code == 422


async def test_a_reservation_spanning_two_domains_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, sku: str
) -> None:
    await two_domains(client, sku)
    body = {
        "reservation_id": "span-1",
        "channel": "web",
        "lines": [
            {"sku": sku, "location_id": "berlin-1", "qty": 1},
            {"sku": sku, "location_id": "vienna-1", "qty": 1},
        ],
    }
    r = await client.post("/v1/reservations", json=body)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "cross_domain"
    assert set(r.json()["domains"]) == {"de", "at"}
    for location_id in ("berlin-1", "vienna-1"):
        assert (await position(client, sku, location_id))["reserved"] == 0
    assert (await client.get("/v1/reservations/span-1")).status_code == 404
    # The id was never claimed: it can still be used for a reservation within one domain.
    await post_ok(client, "/v1/reservations", hold("span-1", sku, "vienna-1", 2))
    assert (await position(client, sku, "vienna-1"))["reserved"] == 2


async def test_one_id_is_one_reservation_across_domains(
    client: httpx.AsyncClient, sku: str
) -> None:
    await two_domains(client, sku)
    await post_ok(client, "/v1/reservations", hold("dup-1", sku, "berlin-1", 2))
    r = await client.post("/v1/reservations", json=hold("dup-1", sku, "vienna-1", 1))
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "idempotency_conflict"
    assert (await position(client, sku, "vienna-1"))["reserved"] == 0
    assert (await position(client, sku, "berlin-1"))["reserved"] == 2
    again = await client.post("/v1/reservations", json=hold("dup-1", sku, "berlin-1", 2))
    assert again.status_code == 200, again.text  # the same request: replayed


async def test_another_process_finds_a_reservation_in_its_domain(
    client: httpx.AsyncClient, redis_client: Redis, settings: Settings, sku: str
) -> None:
    await two_domains(client, sku)
    await post_ok(client, "/v1/reservations", hold("far-1", sku, "vienna-1", 3))
    # A store that never saw the reservation nor the location (another API process).
    other = RedisStockStore(redis_client, Settings(namespace=settings.namespace))
    assert await other.domain_of_reservation("far-1") == "at"
    assert await other.domain_of_location("vienna-1") == "at"
    fulfilled = await other.fulfill("far-1")
    assert fulfilled.reservation.state == "fulfilled"
    assert (await position(client, sku, "vienna-1"))["on_hand"] == 2
    assert (await position(client, sku, "berlin-1"))["on_hand"] == 5
    r = await client.get("/v1/reservations/far-1")
    assert r.json()["state"] == "fulfilled"


async def test_reads_cover_every_domain(client: httpx.AsyncClient, sku: str) -> None:
    await two_domains(client, sku)
    r = await client.get("/v1/availability", params={"sku": sku})
    assert r.status_code == 200, r.text
    found = {loc["location_id"]: loc["available"] for loc in r.json()["locations"]}
    assert found["berlin-1"] == 5
    assert found["vienna-1"] == 5
