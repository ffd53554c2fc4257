"""Smoke test of the webhook-ingest benchmark harness against the in-process app (no timing)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bench.scenarios.webhooks import closed_loop, reservation_request, webhook_request, write_config
from stocksync.config import Settings
from tests.support.api import KeyFactory, Seed


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, sku: str) -> Settings:
    config = write_config(tmp_path / "bench", sku, "store-a")
    return settings.model_copy(update={"connectors_config": config})


async def test_closed_loop_drives_webhooks_and_the_baseline(
    app: FastAPI, client: httpx.AsyncClient, make_key: KeyFactory, seed: Seed, sku: str
) -> None:
    await seed(sku, 1000)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://stocksync.test") as c:
        orders = await closed_loop(c, webhook_request(c, "5", sku), 0.2, 2)
        held = await closed_loop(c, reservation_request(c, "t", make_key(), sku, "store-a"), 0.2, 2)
    assert (orders.errors, held.errors) == (0, 0), orders.error_samples + held.error_samples
    assert orders.ok >= 1
    assert held.ok >= 1
    first = (await client.get("/v1/reservations/shopify-order-5000000000")).json()
    assert first["state"] == "confirmed"
    stock = (await client.get(f"/v1/stock/store-a/{sku}")).json()
    assert stock["reserved"] == orders.ok + held.ok
