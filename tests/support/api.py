"""Helpers for tests through the HTTP API: the fixtures' factory types and request shortcuts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

KeyFactory = Callable[..., str]
Seed = Callable[..., Awaitable[None]]


def as_key(app: FastAPI, key: str) -> httpx.AsyncClient:
    """A client of the app that sends ``key`` as its bearer API key."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://stocksync.test",
        headers={"Authorization": f"Bearer {key}"},
    )


def hold(rid: str, sku: str, loc: str = "store-a", qty: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "reservation_id": rid,
        "channel": "chat",
        "lines": [{"sku": sku, "location_id": loc, "qty": qty}],
        **extra,
    }


async def position(client: httpx.AsyncClient, sku: str, loc: str = "store-a") -> dict[str, Any]:
    r = await client.get(f"/v1/stock/{loc}/{sku}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def post_ok(client: httpx.AsyncClient, path: str, body: Any = None) -> dict[str, Any]:
    r = await client.post(path, json=body)
    assert r.is_success, r.text
    out: dict[str, Any] = r.json()
    return out
