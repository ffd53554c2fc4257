"""Transfers through HTTP: ship, receive, cancel, read and list; every refusal is a problem
with a stable code and leaves every Redis key of the namespace as it was."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stocksync.api.deps import Services
from tests.support.api import KeyFactory, Seed, as_key, position, post_ok
from tests.support.keyspace import snapshot

WH, STORE = "wh-north", "store-b"
THURSDAY = "2030-03-14T10:00:00Z"


@pytest.fixture
async def stocked_ends(seed: Seed, sku: str) -> None:
    """10 units at the warehouse; the store without any."""
    await seed(sku, 10, WH)
    await seed(sku, 0, STORE)


def shipment(sku: str, qty: int = 4, tid: str = "tr-1", **extra: Any) -> dict[str, Any]:
    return {
        "transfer_id": tid,
        "from_location_id": WH,
        "to_location_id": STORE,
        "lines": [{"sku": sku, "qty": qty}],
        **extra,
    }


async def refused(
    services: Services,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    status: int,
    code: str,
    **kwargs: Any,
) -> dict[str, Any]:
    """Send a request that must be refused: the problem, and no Redis key changed."""
    before = await snapshot(services.store.client, services.settings.namespace)
    r = await client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = r.json()
    assert problem["code"] == code, problem
    assert await snapshot(services.store.client, services.settings.namespace) == before
    return problem


@pytest.mark.usefixtures("stocked_ends")
async def test_a_transfer_ships_shows_in_transit_and_is_received_with_a_shortfall(
    client: httpx.AsyncClient, sku: str
) -> None:
    r = await client.post("/v1/transfers", json=shipment(sku, expected_at=THURSDAY))
    assert r.status_code == 201, r.text
    shipped = r.json()
    assert shipped["state"] == "shipped"
    assert shipped["lines"] == [{"sku": sku, "shipped": 4, "received": 0, "shortfall": 0}]
    assert (shipped["expected_at"], shipped["replayed"]) == ("2030-03-14T10:00:00Z", False)
    again = await client.post("/v1/transfers", json=shipment(sku, expected_at=THURSDAY))
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert {**again.json(), "replayed": False} == shipped

    assert (await position(client, sku, WH))["on_hand"] == 6
    target = await position(client, sku, STORE)
    assert (target["in_transit"], target["available"]) == (4, 0)
    assert target["arrivals"] == [
        {"kind": "transfer", "id": "tr-1", "qty": 4, "expected_at": "2030-03-14T10:00:00Z"}
    ]

    r = await client.post("/v1/transfers/tr-1/receive", json={"lines": [{"sku": sku, "qty": 3}]})
    assert r.status_code == 200, r.text
    received = r.json()
    assert received["state"] == "received"
    assert received["lines"] == [{"sku": sku, "shipped": 4, "received": 3, "shortfall": 1}]
    target = await position(client, sku, STORE)
    assert (target["on_hand"], target["in_transit"], target["arrivals"]) == (3, 0, [])
    replay = await client.post(
        "/v1/transfers/tr-1/receive", json={"lines": [{"sku": sku, "qty": 3}]}
    )
    assert (replay.status_code, replay.headers["idempotent-replayed"]) == (200, "true")
    assert (await client.get("/v1/transfers/tr-1")).json() == received


@pytest.mark.usefixtures("stocked_ends")
async def test_a_cancelled_transfer_gives_the_units_back(
    client: httpx.AsyncClient, services: Services, sku: str
) -> None:
    await post_ok(client, "/v1/transfers", shipment(sku))
    r = await client.post("/v1/transfers/tr-1/cancel")
    assert (r.status_code, r.json()["state"]) == (200, "cancelled")
    assert (await position(client, sku, WH))["on_hand"] == 10
    assert (await position(client, sku, STORE))["in_transit"] == 0
    again = await client.post("/v1/transfers/tr-1/cancel", json={})
    assert (again.status_code, again.headers["idempotent-replayed"]) == (200, "true")
    body = {"lines": [{"sku": sku, "qty": 4}]}
    problem = await refused(
        services, client, "POST", "/v1/transfers/tr-1/receive", 409, "invalid_transition", json=body
    )
    assert problem["state"] == "cancelled"
    await refused(
        services,
        client,
        "POST",
        "/v1/transfers/tr-1/cancel",
        422,
        "validation_error",
        json={"x": 1},
    )


@pytest.mark.usefixtures("stocked_ends")
async def test_every_illegal_transfer_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, services: Services, sku: str, seed: Seed
) -> None:
    short = await refused(
        services, client, "POST", "/v1/transfers", 409, "insufficient_stock", json=shipment(sku, 11)
    )
    assert short["short_lines"] == [
        {"sku": sku, "location_id": WH, "requested": 11, "available": 10}
    ]
    forced = await refused(
        services,
        client,
        "POST",
        "/v1/transfers",
        409,
        "insufficient_units",
        json=shipment(sku, 11, force=True),
    )
    assert (forced["bucket"], forced["available"]) == ("on_hand", 10)
    ghost = {**shipment(sku), "to_location_id": "ghost"}
    await refused(services, client, "POST", "/v1/transfers", 404, "not_found", json=ghost)
    same = {**shipment(sku), "to_location_id": WH}
    await refused(services, client, "POST", "/v1/transfers", 422, "validation_error", json=same)
    await seed(sku, 1, "oslo-1", domain="nordics")
    other = {**shipment(sku), "to_location_id": "oslo-1"}
    await refused(services, client, "POST", "/v1/transfers", 409, "cross_domain", json=other)

    await post_ok(client, "/v1/transfers", shipment(sku))
    await refused(
        services,
        client,
        "POST",
        "/v1/transfers",
        409,
        "idempotency_conflict",
        json=shipment(sku, 5),
    )
    receive = "/v1/transfers/tr-1/receive"
    more = {"lines": [{"sku": sku, "qty": 5}]}
    problem = await refused(
        services, client, "POST", receive, 409, "receive_exceeds_shipped", json=more
    )
    assert (problem["sku"], problem["shipped"], problem["requested"]) == (sku, 4, 5)
    unshipped = {"lines": [{"sku": "NOT-SHIPPED", "qty": 1}]}
    await refused(services, client, "POST", receive, 409, "receive_exceeds_shipped", json=unshipped)
    await refused(
        services, client, "POST", "/v1/transfers/nope/receive", 404, "not_found", json=more
    )
    await post_ok(client, receive, {"lines": [{"sku": sku, "qty": 4}]})
    await refused(services, client, "POST", "/v1/transfers/tr-1/cancel", 409, "invalid_transition")
    other_receipt = {"lines": [{"sku": sku, "qty": 2}]}
    await refused(services, client, "POST", receive, 409, "invalid_transition", json=other_receipt)


HOSTILE = {
    "unknown field": {"discount": 1},
    "qty zero": {"lines": [{"sku": "X", "qty": 0}]},
    "qty string": {"lines": [{"sku": "X", "qty": "1"}]},
    "no lines": {"lines": []},
    "101 lines": {"lines": [{"sku": f"S{i}", "qty": 1} for i in range(101)]},
    "sku twice": {"lines": [{"sku": "X", "qty": 1}, {"sku": "X", "qty": 2}]},
    "bad transfer id": {"transfer_id": "has space"},
    "transfer id too long": {"transfer_id": "T" * 65},
    "transfer id with a bar": {"transfer_id": "a|b"},
    "naive expected_at": {"expected_at": "2030-03-14T10:00:00"},
    "force a string": {"force": "yes"},
}


@pytest.mark.parametrize("change", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.usefixtures("stocked_ends")
async def test_a_hostile_shipment_is_422_and_changes_nothing(
    client: httpx.AsyncClient, services: Services, sku: str, change: dict[str, Any]
) -> None:
    body = {**shipment(sku), **change}
    await refused(services, client, "POST", "/v1/transfers", 422, "validation_error", json=body)


@pytest.mark.usefixtures("stocked_ends")
async def test_a_hostile_receipt_is_422_and_changes_nothing(
    client: httpx.AsyncClient, services: Services, sku: str
) -> None:
    await post_ok(client, "/v1/transfers", shipment(sku))
    path = "/v1/transfers/tr-1/receive"
    for body in (
        {"lines": [{"sku": sku, "qty": -1}]},
        {"lines": [{"sku": sku, "qty": 1}, {"sku": sku, "qty": 1}]},
        {"lines": [{"sku": sku, "qty": 1}], "supply_id": "a;b"},
        {"lines": [{"sku": sku, "qty": 1}], "extra": True},
        {},
    ):
        await refused(services, client, "POST", path, 422, "validation_error", json=body)
    await refused(
        services,
        client,
        "POST",
        "/v1/transfers/bad%20id/receive",
        422,
        "validation_error",
        json={"lines": []},
    )


@pytest.mark.usefixtures("stocked_ends")
async def test_a_location_bound_key_acts_only_at_its_end(
    app: FastAPI, client: httpx.AsyncClient, services: Services, make_key: KeyFactory, sku: str
) -> None:
    at_store = as_key(app, make_key("read,stock:write", STORE))
    at_wh = as_key(app, make_key("read,stock:write", WH))
    elsewhere = as_key(app, make_key("read,stock:write", "store-z"))
    async with at_store, at_wh, elsewhere:
        await refused(
            services, at_store, "POST", "/v1/transfers", 403, "forbidden", json=shipment(sku)
        )
        assert (await at_wh.post("/v1/transfers", json=shipment(sku))).status_code == 201
        receipt = {"lines": [{"sku": sku, "qty": 4}]}
        path = "/v1/transfers/tr-1/receive"
        await refused(services, at_wh, "POST", path, 403, "forbidden", json=receipt)
        await refused(services, at_store, "POST", "/v1/transfers/tr-1/cancel", 403, "forbidden")
        await refused(services, elsewhere, "POST", path, 404, "not_found", json=receipt)
        assert (await elsewhere.get("/v1/transfers/tr-1")).status_code == 404
        assert (await at_store.get("/v1/transfers/tr-1")).status_code == 200
        r = await elsewhere.get("/v1/transfers", params={"location_id": WH})
        assert r.status_code == 403
        assert (await at_store.post(path, json=receipt)).json()["state"] == "received"


@pytest.mark.usefixtures("stocked_ends")
async def test_list_transfers_filters_by_state_and_direction(
    client: httpx.AsyncClient, sku: str
) -> None:
    await post_ok(client, "/v1/transfers", shipment(sku, 1, "tr-1"))
    await post_ok(client, "/v1/transfers", shipment(sku, 1, "tr-2"))
    await post_ok(client, "/v1/transfers/tr-2/cancel")

    async def listed(**params: Any) -> list[tuple[str, str]]:
        r = await client.get("/v1/transfers", params=params)
        assert r.status_code == 200, r.text
        return sorted((t["transfer_id"], t["state"]) for t in r.json()["transfers"])

    assert await listed(location_id=STORE) == [("tr-1", "shipped"), ("tr-2", "cancelled")]
    assert await listed(location_id=STORE, state="shipped", direction="in") == [("tr-1", "shipped")]
    assert await listed(location_id=STORE, direction="out") == []
    assert await listed(location_id=WH, direction="out", state="cancelled") == [
        ("tr-2", "cancelled")
    ]
    for bad in ({"location_id": STORE, "limit": 201}, {"location_id": STORE, "state": "lost"}):
        assert (await client.get("/v1/transfers", params=bad)).status_code == 422
    r = await client.get("/v1/transfers", params={"location_id": "ghost"})
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
