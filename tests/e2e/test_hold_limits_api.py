"""Caps on active holds per API key and per customer, through HTTP (small caps here)."""

from __future__ import annotations

import httpx
import pytest

from stocksync.config import Settings
from tests.support.api import KeyFactory, Seed, hold, position, post_ok


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The e2e settings with small caps, so a test can reach them."""
    return settings.model_copy(
        update={"max_active_holds_per_key": {"chat": 3}, "max_active_holds_per_customer": 2}
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
