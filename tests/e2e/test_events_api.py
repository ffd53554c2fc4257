"""A store's live events (Server-Sent Events) through the in-process app, streamed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.api import KeyFactory, Seed
from tests.support.streaming import StreamingASGITransport

WAIT_SECONDS = 10.0


@pytest.fixture
async def streaming(app: FastAPI, make_key: KeyFactory) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_key()}"}
    async with httpx.AsyncClient(
        transport=StreamingASGITransport(app), base_url="http://stocksync.test", headers=headers
    ) as c:
        yield c


async def next_event(lines: AsyncIterator[str]) -> dict[str, Any]:
    """The next SSE event (comments skipped), within a bounded wait."""
    event: dict[str, Any] = {}
    async with asyncio.timeout(WAIT_SECONDS):
        async for line in lines:
            if line.startswith(":"):
                continue
            if not line:
                if event:
                    return event
                continue
            name, _, value = line.partition(": ")
            event[name] = json.loads(value) if name == "data" else value
    raise AssertionError("the stream ended")


def hold(rid: str, sku: str, loc: str) -> dict[str, Any]:
    return {
        "reservation_id": rid,
        "channel": "chat",
        "lines": [{"sku": sku, "location_id": loc, "qty": 1}],
    }


async def test_store_events_stream_only_that_stores_events(
    client: httpx.AsyncClient, streaming: httpx.AsyncClient, seed: Seed, sku: str, app: FastAPI
) -> None:
    await seed(sku, 5, "store-a")
    await seed(sku, 5, "store-b")
    async with streaming.stream("GET", "/v1/locations/store-a/events") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert app.state.event_streams.open == 1
        lines = r.aiter_lines()
        assert (await client.post("/v1/reservations", json=hold("ev-b", sku, "store-b"))).is_success
        assert (await client.post("/v1/reservations", json=hold("ev-a", sku, "store-a"))).is_success
        event = await next_event(lines)
        assert event["event"] == "held"
        assert (event["data"]["loc"], event["data"]["res"]) == ("store-a", "ev-a")
        assert (event["data"]["d_reserved"], event["data"]["reserved"]) == (1, 1)
        assert "fp" not in event["data"]
        code = (await client.get("/v1/reservations/ev-a")).json()["hold_code"]
        assert event["data"]["code"] == code
        first_id = event["id"]
        await client.post("/v1/reservations/ev-a/confirm", json={})
        event = await next_event(lines)
        assert (event["event"], event["data"]["res"]) == ("confirmed", "ev-a")
    # Closing the response ended the stream and gave back its slot.
    assert app.state.event_streams.open == 0

    # Resuming after an id replays what came after it.
    async with streaming.stream(
        "GET", "/v1/locations/store-a/events", headers={"Last-Event-ID": first_id}
    ) as r:
        event = await next_event(r.aiter_lines())
        assert (event["event"], event["data"]["res"]) == ("confirmed", "ev-a")


async def test_store_events_refuse_other_stores_for_a_bound_key(
    anon: httpx.AsyncClient, make_key: KeyFactory, seed: Seed, sku: str
) -> None:
    await seed(sku, 1, "store-a")
    key = make_key("read", "store-b")
    r = await anon.get("/v1/locations/store-a/events", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403
    r = await anon.get(
        "/v1/locations/store-a/events",
        params={"since": "not-an-id"},
        headers={"Authorization": f"Bearer {make_key('read')}"},
    )
    assert r.status_code == 422


async def test_store_events_are_bounded(
    streaming: httpx.AsyncClient, client: httpx.AsyncClient, app: FastAPI, seed: Seed, sku: str
) -> None:
    await seed(sku, 1, "store-a")
    app.state.event_streams.limit = 1
    async with streaming.stream("GET", "/v1/locations/store-a/events") as r:
        assert r.status_code == 200
        again = await client.get("/v1/locations/store-a/events")
        assert again.status_code == 503
        assert again.json()["code"] == "too_many_event_streams"
