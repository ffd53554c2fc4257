"""Fixtures for tests through the HTTP API on their own (the app fixtures themselves, shared
with the connector tests, are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.support.api import Seed


@pytest.fixture
async def anon(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://stocksync.test") as c:
        yield c


@pytest.fixture
def seed(client: httpx.AsyncClient) -> Seed:
    """Create a pickup store and count ``on_hand`` units of ``sku`` there, through the API."""

    async def make(sku: str, on_hand: int, location_id: str = "store-a", **loc: object) -> None:
        body = {
            "name": location_id,
            "kind": "store",
            "lat": 52.52,
            "lon": 13.40,
            "pickup": True,
            "ship": True,
            **loc,
        }
        r = await client.put(f"/v1/locations/{location_id}", json=body)
        assert r.status_code in (200, 201), r.text
        r = await client.put(f"/v1/stock/{location_id}/{sku}", json={"on_hand": on_hand})
        assert r.status_code == 200, r.text

    return make
