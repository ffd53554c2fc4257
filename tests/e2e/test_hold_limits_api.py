"""Caps on active holds per API key and per customer, and on the units one key holds at one
location, through HTTP (small caps here)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stocksync.api.deps import Services
from stocksync.config import Settings
from tests.support.api import KeyFactory, Seed, hold, position, post_ok


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The e2e settings with small caps, so a test can reach them."""
    return settings.model_copy(
        update={
            "max_active_holds_per_key": {"chat": 3},
            "max_active_holds_per_customer": 2,
            "max_held_units_per_location_per_key": {"chat": 4},
        }
    )


async def test_customer_cap_refuses_one_hold_too_many(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 10)
    for i in range(2):
        await post_ok(client, "/v1/reservations", hold(f"cu-{i}", sku, customer_ref="crm-1"))
    r = await client.post("/v1/reservations", json=hold("cu-2", sku, customer_ref="crm-1"))
    assert r.status_code == 409
    problem = r.json()
    assert (problem["code"], problem["limit"], problem["scope"]) == (
        "hold_limit_reached",
        2,
        "customer",
    )
    assert (await position(client, sku))["reserved"] == 2
    assert (await client.get("/v1/reservations/cu-2")).status_code == 404
    # A retry of an existing hold is not a new one.
    assert (
        await client.post("/v1/reservations", json=hold("cu-1", sku, customer_ref="crm-1"))
    ).status_code == 200
    await post_ok(client, "/v1/reservations/cu-0/fulfill")
    await post_ok(client, "/v1/reservations", hold("cu-2", sku, customer_ref="crm-1"))


async def test_key_cap_counts_each_keys_active_holds(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, make_key: KeyFactory, seed: Seed, sku: str
) -> None:
    await seed(sku, 10)
    agent = {"Authorization": f"Bearer {make_key('reserve')}"}
    for i in range(3):
        r = await anon.post("/v1/reservations", json=hold(f"k-{i}", sku), headers=agent)
        assert r.status_code == 201
    r = await anon.post("/v1/reservations", json=hold("k-3", sku), headers=agent)
    assert (r.status_code, r.json()["code"], r.json()["scope"]) == (
        409,
        "hold_limit_reached",
        "key",
    )
    assert r.json()["limit"] == 3
    assert (await position(client, sku))["reserved"] == 3
    await post_ok(client, "/v1/reservations", hold("k-other", sku))  # another key
    await post_ok(client, "/v1/reservations/k-0/release")
    r = await anon.post("/v1/reservations", json=hold("k-3", sku), headers=agent)
    assert r.status_code == 201
    # The cap is the chat channel's: the same key's web carts are not counted or capped.
    web = {**hold("k-web", sku), "channel": "web"}
    assert (await anon.post("/v1/reservations", json=web, headers=agent)).status_code == 201


async def test_unit_cap_counts_a_keys_units_per_location(
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    make_key: KeyFactory,
    seed: Seed,
    sku: str,
    services: Services,
) -> None:
    await seed(sku, 50, "store-a")
    await seed(sku, 50, "store-b")
    agent = {"Authorization": f"Bearer {make_key('reserve')}"}

    async def reserve(body: dict[str, Any]) -> httpx.Response:
        return await anon.post("/v1/reservations", json=body, headers=agent)

    r = await reserve(hold("u-whole-store", sku, qty=5))  # one hold cannot take the store
    assert (r.status_code, r.json()["scope"], r.json()["location_id"]) == (409, "units", "store-a")
    assert (await reserve(hold("u-1", sku, qty=3))).status_code == 201
    r = await reserve(hold("u-2", sku, qty=2))
    problem = r.json()
    assert (r.status_code, problem["code"], problem["scope"], problem["limit"]) == (
        409,
        "hold_limit_reached",
        "units",
        4,
    )
    assert (await position(client, sku))["reserved"] == 3
    # another channel name is no way around it; the configured ones are all there is
    r = await reserve({**hold("u-2", sku, qty=2), "channel": "chat2"})
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")
    assert (await reserve(hold("u-2", sku, qty=1))).status_code == 201  # 4 of 4 at store-a
    assert (await reserve(hold("u-b", sku, "store-b", qty=4))).status_code == 201
    web = {**hold("u-web", sku, qty=10), "channel": "web"}  # web is not capped in units
    assert (await reserve(web)).status_code == 201
    await post_ok(client, "/v1/reservations/u-web/release")  # (it counts as one of 3 holds)
    await post_ok(client, "/v1/reservations/u-1/release")  # ending a hold gives its units back
    assert (await reserve(hold("u-3", sku, qty=3))).status_code == 201
    for rid in ("u-2", "u-3", "u-b"):
        await post_ok(client, f"/v1/reservations/{rid}/release")
    key_id = (await services.store.get_reservation("u-1")).key_id
    assert key_id is not None
    assert await services.store.client.hgetall(services.store.keys.held_units(key_id, "chat")) == {}


async def test_unit_cap_moves_with_the_hold(
    client: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    make_key: KeyFactory,
    seed: Seed,
    sku: str,
) -> None:
    await seed(sku, 50, "store-a")
    await seed(sku, 50, "store-b")
    agent = {"Authorization": f"Bearer {make_key('reserve')}"}
    move = {"from_location_id": "store-a", "to_location_id": "store-b"}
    r = await anon.post("/v1/reservations", json=hold("mv-1", sku, qty=4), headers=agent)
    assert r.status_code == 201
    await post_ok(client, "/v1/reservations/mv-1/move", move)
    # store-a is free again for this key, store-b is full
    r = await anon.post("/v1/reservations", json=hold("mv-2", sku, qty=1), headers=agent)
    assert r.status_code == 201
    r = await client.post("/v1/reservations/mv-2/move", json=move)
    assert (r.status_code, r.json()["scope"], r.json()["location_id"]) == (409, "units", "store-b")
    assert (await position(client, sku, "store-a"))["reserved"] == 1
    assert (await position(client, sku, "store-b"))["reserved"] == 4
