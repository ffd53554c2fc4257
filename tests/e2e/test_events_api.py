"""A store's live events (Server-Sent Events) through the in-process app, streamed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stocksync.api.deps import Services
from stocksync.config import Settings
from tests.support.api import KeyFactory, Seed
from tests.support.streaming import StreamingASGITransport

WAIT_SECONDS = 10.0
EVENTS = "/v1/locations/store-a/events"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Keepalives (and so re-checks of a stream's key) well within a test's wait."""
    return settings.model_copy(
        update={
            "event_keepalive_seconds": 0.2,
            "api_key_cache_seconds": 0.1,
            "max_event_streams_per_key": 2,
        }
    )


@pytest.fixture
async def streaming(app: FastAPI, make_key: KeyFactory) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {make_key()}"}
    async with httpx.AsyncClient(
        transport=StreamingASGITransport(app), base_url="http://stocksync.test", headers=headers
    ) as c:
        yield c


StreamAs = Callable[..., AbstractAsyncContextManager[httpx.Response]]


@pytest.fixture
def stream_as(streaming: httpx.AsyncClient) -> StreamAs:
    """Open the store's event stream with another key: ``stream_as(key, params=…)``."""

    def open_stream(key: str, **kwargs: Any) -> AbstractAsyncContextManager[httpx.Response]:
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        return streaming.stream("GET", EVENTS, headers=headers, **kwargs)

    return open_stream


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
        # The first event was observed once it was written (propagation, sink=sse).
        sent = app.state.metrics.registry.get_sample_value(
            "stocksync_propagation_seconds_count", {"sink": "sse"}
        )
        assert sent is not None
        assert sent >= 1
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


async def test_store_events_end_when_the_key_is_revoked(
    stream_as: StreamAs, make_key: KeyFactory, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 1, "store-a")
    key = make_key("read")
    async with stream_as(key) as r:
        assert r.status_code == 200
        lines = r.aiter_lines()
        assert await anext(lines) == ": keepalive"
        assert services.api_keys.revoke(key.split("_")[1])
        async with asyncio.timeout(WAIT_SECONDS):  # the stream ends by itself
            rest = [line async for line in lines]
        assert "revoked" in "".join(rest)
    async with stream_as(key) as r:
        assert r.status_code == 401


async def test_store_events_are_bounded_per_key(
    stream_as: StreamAs, make_key: KeyFactory, app: FastAPI, seed: Seed, sku: str
) -> None:
    await seed(sku, 1, "store-a")
    greedy, other = make_key("read"), make_key("read")
    async with AsyncExitStack() as streams:
        for _ in range(2):  # max_event_streams_per_key
            assert (await streams.enter_async_context(stream_as(greedy))).status_code == 200
        async with stream_as(greedy) as refused:
            assert refused.status_code == 429
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["Retry-After"].isdigit()
            assert json.loads(await refused.aread())["code"] == "too_many_event_streams"
        async with stream_as(other) as r:
            assert r.status_code == 200
        assert app.state.event_streams.open == 2
    async with stream_as(greedy) as r:  # closing a stream gives its slot back
        assert r.status_code == 200


MALFORMED_CURSORS = {
    "ms over 2^64-1": {"params": {"since": "99999999999999999999-0"}},
    "seq over 2^64-1": {"params": {"since": "1-99999999999999999999"}},
    "2^64": {"params": {"since": "18446744073709551616"}},
    "arabic-indic digits": {"params": {"since": "\u0661\u0662\u0663"}},
    "fullwidth digits": {"params": {"since": "\uff11-\uff10"}},
    "no seq after dash": {"params": {"since": "1-"}},
    "empty": {"params": {"since": ""}},
    "huge last-event-id": {"headers": {"Last-Event-ID": "9" * 10_000}},
    "last-event-id over 2^64-1": {"headers": {"Last-Event-ID": "99999999999999999999-0"}},
    "last-event-id null": {"headers": {"Last-Event-ID": "null"}},
}


@pytest.mark.parametrize("request_parts", MALFORMED_CURSORS.values(), ids=MALFORMED_CURSORS.keys())
async def test_store_events_refuse_a_malformed_cursor_before_streaming(
    stream_as: StreamAs,
    make_key: KeyFactory,
    app: FastAPI,
    seed: Seed,
    sku: str,
    request_parts: dict[str, Any],
) -> None:
    await seed(sku, 1, "store-a")
    async with stream_as(make_key("read"), **request_parts) as r:
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        assert json.loads(await r.aread())["code"] == "validation_error"
    assert app.state.event_streams.open == 0


async def test_store_events_show_reservation_details_only_to_staff_and_admins(
    client: httpx.AsyncClient, stream_as: StreamAs, make_key: KeyFactory, seed: Seed, sku: str
) -> None:
    """A reader that is not the store's (an unbound key of a web shop) sees the stock change,
    not whose hold it is: no reservation id, customer reference or hold code."""
    await seed(sku, 5, "store-a")
    seen: dict[str, dict[str, Any]] = {}
    for who, key in (("shop", make_key("read")), ("staff", make_key("read", "store-a"))):
        async with stream_as(key) as r:
            assert r.status_code == 200
            lines = r.aiter_lines()
            body = {**hold(f"ev-{who}", sku, "store-a"), "customer_ref": "crm-5"}
            assert (await client.post("/v1/reservations", json=body)).is_success
            seen[who] = (await next_event(lines))["data"]
    assert seen["shop"]["reserved"] == 1
    assert seen["shop"]["d_reserved"] == 1
    assert not {"res", "cref", "code", "lines"} & set(seen["shop"])
    assert (seen["staff"]["res"], seen["staff"]["cref"]) == ("ev-staff", "crm-5")
    assert seen["staff"]["code"]


async def test_a_store_in_another_domain_streams_its_domains_events(
    client: httpx.AsyncClient, streaming: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    """Each store's stream tails its own domain's outbox; ids name the domain outside
    ``default``, and a resume after such an id continues in that domain's stream."""
    await seed(sku, 5, "store-a")
    await seed(sku, 5, "store-eu", domain="eu")
    async with (
        streaming.stream("GET", "/v1/locations/store-eu/events") as eu,
        streaming.stream("GET", EVENTS) as default,
    ):
        eu_lines, default_lines = eu.aiter_lines(), default.aiter_lines()
        assert (await client.post("/v1/reservations", json=hold("d-a", sku, "store-a"))).is_success
        assert (
            await client.post("/v1/reservations", json=hold("d-eu", sku, "store-eu"))
        ).is_success
        event = await next_event(eu_lines)
        assert (event["event"], event["data"]["res"]) == ("held", "d-eu")
        assert event["id"].startswith("eu/")
        eu_first = event["id"]
        event = await next_event(default_lines)
        assert (event["event"], event["data"]["res"]) == ("held", "d-a")
        assert "/" not in event["id"]  # the default domain's ids are as they always were
    await client.post("/v1/reservations/d-eu/release", json={})
    async with streaming.stream(
        "GET", "/v1/locations/store-eu/events", headers={"Last-Event-ID": eu_first}
    ) as r:
        event = await next_event(r.aiter_lines())
        assert (event["event"], event["data"]["res"]) == ("released", "d-eu")


async def test_store_events_show_moves_and_returns_with_their_buckets(
    client: httpx.AsyncClient, streaming: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5, "store-a")
    move = {"from": "on_hand", "to": "damaged", "qty": 2, "reason": "found-broken"}
    till = {
        "return_id": "till-1",
        "lines": [{"sku": sku, "location_id": "store-a", "qty": 1, "disposition": "inspect"}],
    }
    async with streaming.stream("GET", EVENTS) as r:
        lines = r.aiter_lines()
        moved = await client.post(
            f"/v1/stock/store-a/{sku}/moves",
            json={**move, "source": "store", "source_event_id": "mv-1"},
        )
        assert moved.status_code == 200
        assert (await client.post("/v1/returns", json=till)).status_code == 201
        event = await next_event(lines)
        assert event["event"] == "stock_moved"
        numbers = ("d_on_hand", "d_damaged", "on_hand", "damaged", "quality_control")
        assert [event["data"][k] for k in numbers] == [-2, 2, 3, 2, 0]
        assert (event["data"]["from"], event["data"]["to"]) == ("on_hand", "damaged")
        event = await next_event(lines)
        assert event["event"] == "returned"
        assert (event["data"]["ret"], event["data"]["disp"]) == ("till-1", "inspect")
        assert (event["data"]["d_quality_control"], event["data"]["quality_control"]) == (1, 1)
