"""Bad input gets a clear 4xx problem and changes nothing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from stocksync.api.strict_json import StrictJsonRoute
from tests.support.api import Seed


def line(**overrides: Any) -> dict[str, Any]:
    return {"sku": "X", "location_id": "store-a", "qty": 1, **overrides}


def body(**overrides: Any) -> dict[str, Any]:
    return {"reservation_id": "hostile-1", "channel": "web", "lines": [line()], **overrides}


HOSTILE_RESERVATIONS = {
    "qty zero": body(lines=[line(qty=0)]),
    "qty negative": body(lines=[line(qty=-1)]),
    "qty fraction": body(lines=[line(qty=1.5)]),
    "qty huge": body(lines=[line(qty=2**63)]),
    "qty over limit": body(lines=[line(qty=10_001)]),
    "qty string": body(lines=[line(qty="1")]),
    "qty null": body(lines=[line(qty=None)]),
    "qty bool": body(lines=[line(qty=True)]),
    "unknown field": body(discount=10),
    "unknown line field": body(lines=[line(price=1)]),
    "no lines": body(lines=[]),
    "101 lines": body(lines=[line(sku=f"S{i}") for i in range(101)]),
    "bad sku": body(lines=[line(sku="has space")]),
    "sku too long": body(lines=[line(sku="A" * 65)]),
    "sku dot dot": body(lines=[line(sku="..")]),
    "sku dot": body(lines=[line(sku=".")]),
    "bad reservation id": body(reservation_id="../etc"),
    "bad channel": body(channel="WEB CHANNEL"),
    "unknown channel": body(channel="web2"),
    "ttl zero": body(ttl_seconds=0),
    "ttl string": body(ttl_seconds="60"),
    "customer email": body(customer_ref="jane@example.com"),
    "lines not a list": body(lines={"sku": "X"}),
    "array body": [body()],
}


@pytest.mark.parametrize("payload", HOSTILE_RESERVATIONS.values(), ids=HOSTILE_RESERVATIONS.keys())
async def test_hostile_reservation_is_422_and_changes_nothing(
    client: httpx.AsyncClient, seed: Seed, payload: Any
) -> None:
    await seed("X", 5)
    r = await client.post("/v1/reservations", json=payload)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "validation_error"
    assert r.json()["errors"]
    position = (await client.get("/v1/stock/store-a/X")).json()
    assert (position["on_hand"], position["reserved"]) == (5, 0)
    assert (await client.get("/v1/reservations/hostile-1")).status_code == 404


async def test_unknown_location_is_404_and_changes_nothing(
    client: httpx.AsyncClient, seed: Seed
) -> None:
    await seed("X", 5)
    payload = body(lines=[line(), line(location_id="store-nowhere")])
    r = await client.post("/v1/reservations", json=payload)
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    assert (await client.get("/v1/stock/store-a/X")).json()["reserved"] == 0


async def test_ten_thousand_lines_are_refused(client: httpx.AsyncClient, seed: Seed) -> None:
    await seed("X", 5)
    payload = body(lines=[line() for _ in range(10_000)])
    r = await client.post("/v1/reservations", json=payload)
    assert r.status_code == 413  # larger than the body limit: refused before parsing
    assert r.json()["code"] == "payload_too_large"
    assert (await client.get("/v1/stock/store-a/X")).json()["reserved"] == 0


@pytest.mark.parametrize(
    "raw", [b"{", b"not json", b'{"reservation_id": "hostile-1",}', b"", b"\xff\xfe"]
)
async def test_broken_json_is_422(client: httpx.AsyncClient, seed: Seed, raw: bytes) -> None:
    await seed("X", 5)
    r = await client.post(
        "/v1/reservations", content=raw, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    assert (await client.get("/v1/stock/store-a/X")).json()["reserved"] == 0


HOSTILE_COUNTS = {
    "negative": {"on_hand": -1},
    "fraction": {"on_hand": 1.5},
    "huge": {"on_hand": 2**63},
    "string": {"on_hand": "7"},
    "unknown field": {"on_hand": 7, "price": 3},
    "naive as_of": {"on_hand": 7, "as_of": "2026-01-01T10:00:00"},
    "as_of a number": {"on_hand": 7, "as_of": 0},
    "as_of epoch text": {"on_hand": 7, "as_of": "1700000000"},
    "bad source": {"on_hand": 7, "source": "POS SYSTEM"},
}


@pytest.mark.parametrize("payload", HOSTILE_COUNTS.values(), ids=HOSTILE_COUNTS.keys())
async def test_hostile_count_is_422_and_changes_nothing(
    client: httpx.AsyncClient, seed: Seed, payload: dict[str, Any]
) -> None:
    await seed("X", 5)
    r = await client.put("/v1/stock/store-a/X", json=payload)
    assert r.status_code == 422, r.text
    assert (await client.get("/v1/stock/store-a/X")).json()["on_hand"] == 5


HOSTILE_ADJUSTMENTS = {
    "missing event id": {"delta": -1, "reason": "sale", "source": "pos"},
    "delta too big": {"delta": 2**40, "reason": "sale", "source": "pos", "source_event_id": "e1"},
    "delta fraction": {"delta": 0.5, "reason": "sale", "source": "pos", "source_event_id": "e1"},
    "occurred_at a number": {
        "delta": -1,
        "reason": "sale",
        "source": "pos",
        "source_event_id": "e1",
        "occurred_at": 0,
    },
}


@pytest.mark.parametrize("payload", HOSTILE_ADJUSTMENTS.values(), ids=HOSTILE_ADJUSTMENTS.keys())
async def test_hostile_adjustment_is_422_and_changes_nothing(
    client: httpx.AsyncClient, seed: Seed, payload: dict[str, Any]
) -> None:
    await seed("X", 5)
    r = await client.post("/v1/stock/store-a/X/adjustments", json=payload)
    assert r.status_code == 422, r.text
    assert (await client.get("/v1/stock/store-a/X")).json()["on_hand"] == 5


@pytest.mark.parametrize(
    "path",
    [
        "/v1/stock/store-a/bad%20sku",
        "/v1/stock/STORE_A/X",
        "/v1/availability?sku=a%20b",
        "/v1/availability?sku=..",
        "/v1/stock/store-a/.hidden",
        "/v1/stock/store-a/X/history?before_seq=9223372036854775808",  # 2^63: beyond BIGINT
    ],
)
async def test_bad_path_or_query_is_422(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"


DUPLICATE_KEYS = {
    "reservation": (
        "POST",
        "/v1/reservations",
        '{"reservation_id": "dup-1", "channel": "web", "lines": '
        '[{"sku": "X", "location_id": "store-a", "qty": 1, "qty": 5}]}',
    ),
    "count": ("PUT", "/v1/stock/store-a/X", '{"on_hand": 1, "on_hand": 900}'),
    "location": ("PUT", "/v1/locations/store-a", '{"name": "A", "kind": "store", "name": "B"}'),
}


@pytest.mark.parametrize(("method", "path", "raw"), DUPLICATE_KEYS.values(), ids=DUPLICATE_KEYS)
async def test_duplicate_json_keys_are_422_and_change_nothing(
    client: httpx.AsyncClient, seed: Seed, method: str, path: str, raw: str
) -> None:
    await seed("X", 5)
    before = (await client.get("/v1/locations")).json()
    headers = {"content-type": "application/json"}
    r = await client.request(method, path, content=raw, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"
    assert "duplicate key" in r.json()["errors"][0]["msg"]
    position = (await client.get("/v1/stock/store-a/X")).json()
    assert (position["on_hand"], position["reserved"]) == (5, 0)
    assert (await client.get("/v1/locations")).json() == before


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, also inside included routers (which FastAPI keeps as one route)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from api_routes(router.routes)


def test_every_route_with_a_json_body_refuses_duplicate_keys(app: FastAPI) -> None:
    with_body = [r for r in api_routes(app.routes) if r.body_field is not None]
    assert with_body
    assert [r.path for r in with_body if not isinstance(r, StrictJsonRoute)] == []


async def test_unknown_route_is_problem_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


async def test_timestamps_are_accepted_as_iso_strings(
    client: httpx.AsyncClient, seed: Seed
) -> None:
    await seed("X", 5)
    r = await client.post(
        "/v1/stock/store-a/X/adjustments",
        json={
            "delta": -1,
            "reason": "sale",
            "source": "pos",
            "source_event_id": "till-1",
            "occurred_at": "2026-11-26T10:00:00+00:00",
        },
    )
    assert r.status_code == 200, r.text
    r = await client.put(
        "/v1/stock/store-a/X", json={"on_hand": 9, "as_of": "2026-11-26T10:00:01Z"}
    )
    assert r.status_code == 200, r.text


async def test_integral_floats_are_integers(client: httpx.AsyncClient, seed: Seed) -> None:
    """JSON Schema's integer admits 7.0; only a fraction, a string or a bool is refused."""
    await seed("X", 5)
    r = await client.put("/v1/stock/store-a/X", json={"on_hand": 7.0, "safety_stock": 1.0})
    assert (r.status_code, r.json()["on_hand"], r.json()["safety_stock"]) == (200, 7, 1)
    adjustment = {"delta": -2.0, "reason": "sale", "source": "pos", "source_event_id": "f-1"}
    r = await client.post("/v1/stock/store-a/X/adjustments", json=adjustment)
    assert (r.status_code, r.json()["on_hand"]) == (200, 5)
    r = await client.post("/v1/reservations", json=body(lines=[line(qty=2.0)], ttl_seconds=60.0))
    assert r.status_code == 201, r.text
    assert r.json()["lines"][0]["qty"] == 2


async def test_openapi_keeps_the_bounds_of_request_integers(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    qty = schemas["LineIn"]["properties"]["qty"]
    assert (qty["type"], qty["minimum"], qty["maximum"]) == ("integer", 1, 10_000)
    delta = schemas["AdjustmentIn"]["properties"]["delta"]
    assert (delta["minimum"], delta["maximum"]) == (-1_000_000, 1_000_000)
