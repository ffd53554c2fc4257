"""Shopify order webhooks through the real app: ``POST /v1/connectors/shopify/webhook``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.framework.state import ConnectorState
from connectors.shopify.webhook import signature
from stocksync.api.deps import Services
from stocksync.config import Settings
from tests.support.api import Seed
from tests.support.shopify_payloads import order

SECRET = "shpss_test_secret"
URL = "/v1/connectors/shopify/webhook"
ITEM = "gid://shopify/InventoryItem/808950810"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, sku: str) -> Settings:
    mapping = tmp_path / "shopify-map.toml"
    mapping.write_text(
        f'[skus]\n"{ITEM}" = "{sku}"\n[locations]\n"gid://shopify/Location/1" = "store-a"\n'
    )
    config = tmp_path / "connectors.toml"
    config.write_text(
        "[shopify]\n"
        'shop_url = "http://127.0.0.1:9"\n'
        'access_token = "unused-here"\n'
        f'webhook_secret = "{SECRET}"\n'
        f'mapping_file = "{mapping}"\n'
        "[shopify.retry]\nattempts = 2\nbase_seconds = 0.01\ncap_seconds = 0.02\n"
    )
    return settings.model_copy(update={"connectors_config": config})


async def deliver(
    anon: httpx.AsyncClient,
    topic: str,
    payload: dict[str, Any],
    *,
    webhook_id: str = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    secret: str = SECRET,
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature(secret, body),
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Shop-Domain": "example.myshopify.com",
    }
    return await anon.post(URL, content=body, headers=headers)


async def reservation(client: httpx.AsyncClient, rid: str) -> dict[str, Any]:
    r = await client.get(f"/v1/reservations/{rid}")
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def stock(client: httpx.AsyncClient, sku: str) -> dict[str, Any]:
    r = await client.get(f"/v1/stock/store-a/{sku}")
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def test_webhook_order_with_a_hold_confirms_it(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    hold = {
        "reservation_id": "cart-77",
        "channel": "web",
        "lines": [{"sku": sku, "location_id": "store-a", "qty": 2}],
        "ttl_seconds": 600,
    }
    assert (await client.post("/v1/reservations", json=hold)).status_code == 201
    r = await deliver(
        anon, "orders/create", order(1, reservation_id="cart-77", lines=[(sku, 2, None)])
    )
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "applied"
    assert (await reservation(client, "cart-77"))["state"] == "confirmed"
    assert (await stock(client, sku))["reserved"] == 2


async def test_webhook_order_without_a_hold_reserves_and_confirms(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    r = await deliver(anon, "orders/create", order(2, lines=[(sku, 3, None)]))
    assert r.status_code == 200, r.text
    assert r.json()["reservation_id"] == "shopify-order-2"
    assert (await reservation(client, "shopify-order-2"))["state"] == "confirmed"
    assert (await stock(client, sku))["available"] == 2


async def test_webhook_cancelled_order_releases_its_reservation(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    await deliver(anon, "orders/create", order(3, lines=[(sku, 3, None)]))
    r = await deliver(anon, "orders/cancelled", order(3, lines=[(sku, 3, None)]), webhook_id="w2")
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "applied"
    assert (await reservation(client, "shopify-order-3"))["state"] == "released"
    assert (await stock(client, sku))["available"] == 5


async def test_webhook_delivered_twice_changes_nothing_the_second_time(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    payload = order(4, lines=[(sku, 2, None)])
    first = await deliver(anon, "orders/create", payload)
    before = await stock(client, sku)
    second = await deliver(anon, "orders/create", payload)
    assert (first.json()["outcome"], second.json()["outcome"]) == ("applied", "duplicate")
    assert await stock(client, sku) == before


async def test_webhook_bad_signature_is_401_and_changes_nothing(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    r = await deliver(anon, "orders/create", order(5, lines=[(sku, 2, None)]), secret="wrong")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "unauthorized"
    assert (await client.get("/v1/reservations/shopify-order-5")).status_code == 404
    assert (await stock(client, sku))["available"] == 5


async def test_webhook_oversold_order_is_dead_lettered_and_answered_200(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 1)
    r = await deliver(anon, "orders/create", order(6, lines=[(sku, 3, None)]))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "dead_letter"
    letters = ConnectorState(services.engine, "shopify").dead_letters()
    assert len(letters) == 1
    assert "insufficient_stock" in letters[0].reason
    assert json.loads(letters[0].payload)["id"] == 6
    assert (await client.get("/v1/reservations/shopify-order-6")).status_code == 404
    assert (await stock(client, sku))["available"] == 1


async def test_webhook_unmappable_order_is_dead_lettered(
    anon: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 1)
    r = await deliver(anon, "orders/create", order(7, lines=[("NOT-OURS", 1, 99)]))
    assert r.json()["outcome"] == "dead_letter"
    letters = ConnectorState(services.engine, "shopify").dead_letters()
    assert "not in the mapping file" in letters[0].reason


async def test_webhook_transient_engine_failure_is_503_so_shopify_retries(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    await services.store.client.sadd(services.store.keys.regressed, sku)  # frozen: try later
    r = await deliver(anon, "orders/create", order(8, lines=[(sku, 1, None)]))
    assert r.status_code == 503
    assert r.json()["code"] == "stock_regressed"
    assert ConnectorState(services.engine, "shopify").dead_letters() == []
