"""The lean path answers exactly as FastAPI does: the same requests, good and bad, sent to an
app with the lean path and to one without (``lean_path=False``) get the same statuses, headers
and bodies (times and hold codes aside), and the OpenAPI document is the same."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stocksync.api.app import create_app
from stocksync.api.deps import Services
from stocksync.api.lean import LeanApp
from stocksync.config import Settings
from tests.support.api import KeyFactory

REQUEST_ID = "lean-diff-1"
VOLATILE = re.compile(r'"(created_at|updated_at|expires_at|at|hold_code)":("[^"]*"|null)')
COMPARED_HEADERS = ("content-type", "idempotent-replayed", "retry-after", "www-authenticate")


@pytest.fixture
async def fastapi_app(settings: Settings, tmp_path: Path) -> AsyncIterator[FastAPI]:
    """The same app without the lean path, on a namespace and database of its own."""
    other = settings.model_copy(
        update={
            "lean_path": False,
            "namespace": settings.namespace + "f",
            "database_url": f"sqlite:///{tmp_path / 'fastapi.db'}",
        }
    )
    application = create_app(other)
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:  # one task enters and exits the lifespan (see tests/conftest.py)
        async with application.router.lifespan_context(application):
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    await started.wait()
    yield application
    stop.set()
    await task


def _client(app: FastAPI, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://stocksync.test",
        headers={"Authorization": f"Bearer {key}", "X-Request-Id": REQUEST_ID},
    )


def _keys(svc: Services) -> dict[str, str]:
    made = {
        "admin": svc.api_keys.create("admin", "read,reserve,stock:write,admin"),
        "reader": svc.api_keys.create("reader", "read"),
        "bound": svc.api_keys.create("bound", "read,reserve", ["store-b"]),
    }
    return {name: key for name, (key, _) in made.items()}


def hold(rid: str, **extra: Any) -> dict[str, Any]:
    line = {"sku": "LEAN-1", "location_id": "store-a", "qty": 1}
    return {"reservation_id": rid, "channel": "web", "lines": [line], **extra}


R = "/v1/reservations"
RETURN = {
    "return_id": "lean-ret",
    "reservation_id": "lean-a",
    "lines": [{"sku": "LEAN-1", "location_id": "store-b", "qty": 1, "disposition": "restock"}],
}
B = "/v1/availability/batch"
JSON = {"Content-Type": "application/json"}
SOON = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
# (key, method, path, keyword arguments of httpx's request), sent in this order to both apps.
REQUESTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("admin", "POST", R, {"json": hold("lean-a")}),
    ("admin", "POST", R, {"json": hold("lean-a")}),  # replay
    ("admin", "POST", R, {"json": hold("lean-a", ttl_seconds=60)}),  # conflict
    ("admin", "POST", R, {"json": hold("lean-b", lines=[])}),
    ("admin", "POST", R, {"json": hold("lean-b", discount=1)}),
    ("admin", "POST", R, {"json": hold("lean-b", channel="web2")}),
    ("admin", "POST", R, {"json": hold("lean-b", ttl_seconds=10**7)}),
    ("admin", "POST", R, {"json": hold("lean-b", ttl_seconds=5.0)}),
    ("admin", "POST", R, {"json": hold("lean-b", customer_ref="a@b.c")}),
    ("admin", "POST", R, {"json": [hold("lean-b")]}),
    ("admin", "POST", R, {"json": None}),
    ("admin", "POST", R, {"content": b"", "headers": JSON}),
    ("admin", "POST", R, {"content": b'{"reservation_id": "x",', "headers": JSON}),
    ("admin", "POST", R, {"content": b'{"qty": 1, "qty": 2}', "headers": JSON}),
    ("admin", "POST", R, {"content": b"\xff\xfe{}", "headers": JSON}),
    ("admin", "POST", R, {"content": b'{"reservation_id": "x"}'}),  # no content type
    ("admin", "POST", R, {"content": b"{}", "headers": {"Content-Type": "text/plain"}}),
    ("admin", "POST", R, {"content": b"{}", "headers": {"Content-Type": "application/x+json"}}),
    ("admin", "POST", R, {"json": hold("lean-c", lines=[{"sku": "LEAN-1", "qty": 1}])}),
    ("admin", "POST", R, {"json": hold("lean-d", lines=[{**hold("x")["lines"][0], "qty": 99}])}),
    ("admin", "POST", R, {"json": hold("lean-p", lines=[{**hold("x")["lines"][0], "pool": "p"}])}),
    (
        "admin",
        "POST",
        R,
        {"json": hold("lean-p", lines=[{"sku": "LEAN-1", "pool": "p", "qty": 1}])},
    ),
    ("admin", "POST", R, {"json": hold("lean-p", near={"lat": 52.5})}),
    ("admin", "POST", R, {"json": hold("lean-p", allow_split="yes")}),
    (
        "bound",
        "POST",
        R,
        {"json": hold("lean-p", lines=[{"sku": "LEAN-1", "pool": "p", "qty": 1}])},
    ),
    ("reader", "POST", R, {"json": hold("lean-e")}),
    ("bound", "POST", R, {"json": hold("lean-e")}),
    ("none", "POST", R, {"json": hold("lean-e")}),
    ("bad", "POST", R, {"json": hold("lean-e")}),
    ("basic", "POST", R, {"json": hold("lean-e")}),
    ("admin", "GET", f"{R}/lean-a", {}),
    ("reader", "GET", f"{R}/lean-a", {}),
    ("bound", "GET", f"{R}/lean-a", {}),
    ("admin", "GET", f"{R}/no-such", {}),
    ("admin", "GET", f"{R}/bad%20id", {}),
    ("admin", "GET", f"{R}/", {}),
    ("admin", "POST", f"{R}/lean-a/confirm", {"json": {"pickup_within_seconds": 0}}),
    ("admin", "POST", f"{R}/lean-a/confirm", {"json": {"pickup_within_seconds": 10**7}}),
    ("admin", "POST", f"{R}/lean-a/confirm", {"json": {"other": 1}}),
    ("admin", "POST", f"{R}/lean-a/confirm", {"json": {"pickup_within_seconds": 3600}}),
    ("admin", "POST", f"{R}/lean-a/confirm", {}),  # repeated
    ("admin", "POST", f"{R}/lean-a/ready", {"json": {"x": 1}}),
    ("bound", "POST", f"{R}/lean-a/ready", {}),
    ("admin", "POST", f"{R}/lean-a/ready", {"json": {}}),
    ("admin", "POST", f"{R}/lean-a/extend", {}),
    ("admin", "POST", f"{R}/lean-a/extend", {"json": {"ttl_seconds": "60"}}),
    ("admin", "POST", f"{R}/lean-a/extend", {"json": {"ttl_seconds": 600}}),
    ("admin", "POST", f"{R}/lean-a/fulfill", {}),
    ("admin", "POST", f"{R}/lean-a/fulfill", {}),  # repeated
    ("admin", "POST", "/v1/returns", {"json": RETURN}),
    ("admin", "GET", f"{R}/lean-a", {}),  # with its returned units and return ids
    ("admin", "POST", f"{R}/lean-a/release", {}),  # terminal
    ("admin", "POST", f"{R}/bad%20id/release", {"content": b"{", "headers": JSON}),
    ("admin", "POST", f"{R}/bad%20id/release", {"json": {"x": 1}}),
    ("admin", "POST", f"{R}/no-such/release", {}),
    ("admin", "GET", f"{R}/lean-a/release", {}),  # method not allowed
    ("admin", "GET", "/v1/stock/store-a/LEAN-1", {}),
    ("admin", "GET", "/v1/stock/store-a/bad%20sku", {}),
    ("bound", "GET", "/v1/stock/store-a/LEAN-1", {}),
    ("none", "GET", "/v1/stock/store-a/LEAN-1", {}),
    ("admin", "GET", "/v1/availability", {"params": {"sku": "LEAN-1"}}),
    ("admin", "GET", "/v1/availability", {}),
    ("admin", "GET", "/v1/availability?sku=LEAN-1&sku=bad%20sku", {}),
    ("admin", "GET", "/v1/availability", {"params": {"sku": "LEAN-1", "channel": "web"}}),
    ("admin", "GET", "/v1/availability", {"params": {"sku": "LEAN-1", "pickup": "yes"}}),
    ("admin", "GET", "/v1/availability", {"params": {"sku": "LEAN-1", "pickup": "maybe"}}),
    ("admin", "GET", "/v1/availability", {"params": {"sku": "LEAN-1", "near": "52.5,13.4"}}),
    ("admin", "GET", "/v1/availability?sku=LEAN-1&near=99,13&radius_km=0", {}),
    ("admin", "GET", "/v1/availability?sku=&near=&radius_km=&channel=", {}),
    ("bound", "GET", "/v1/availability", {"params": {"sku": "LEAN-1"}}),
    ("admin", "GET", "/v1/availability", {"params": {"sku": "LEAN-1", "pool": "web-a"}}),
    ("admin", "GET", "/v1/availability", {"params": {"sku": "LEAN-1", "pool": "nope"}}),
    ("admin", "GET", "/v1/availability", {"params": {"sku": "LEAN-1", "pool": "Bad Pool"}}),
    ("admin", "GET", "/v1/availability?sku=LEAN-1&pool=web-a&near=52.5,13.4&channel=web", {}),
    ("bound", "GET", "/v1/availability", {"params": {"sku": "LEAN-1", "pool": "web-a"}}),
    ("admin", "GET", "/v1/availability", {"params": {"sku": "LEAN-1", "by": SOON}}),
    ("admin", "GET", "/v1/availability", {"params": {"sku": "LEAN-1", "by": "2099-01-01T00:00Z"}}),
    (
        "admin",
        "GET",
        "/v1/availability",
        {"params": {"sku": "LEAN-1", "by": "2099-01-01T00:00:00Z"}},
    ),
    (
        "admin",
        "GET",
        "/v1/availability",
        {"params": {"sku": "LEAN-1", "by": "2030-01-01T00:00:00"}},
    ),
    ("admin", "GET", "/v1/availability?sku=LEAN-1&by=&near=52.5,13.4", {}),
    (
        "admin",
        "GET",
        "/v1/availability",
        {"params": {"sku": "LEAN-1", "near": "52.5,13.4", "by": SOON}},
    ),
    (
        "admin",
        "GET",
        "/v1/availability",
        {"params": {"sku": "LEAN-1", "pool": "web-a", "by": SOON}},
    ),
    ("bound", "GET", "/v1/availability", {"params": {"sku": "LEAN-1", "by": SOON}}),
    ("admin", "POST", B, {"json": {"pool": "web-a", "skus": ["LEAN-1", "LEAN-2"]}}),
    ("admin", "POST", B, {"json": {"location_id": "store-a", "skus": ["LEAN-1"]}}),
    ("admin", "POST", B, {"json": {"pool": "web-a", "location_id": "store-a", "skus": ["A"]}}),
    ("admin", "POST", B, {"json": {"skus": ["LEAN-1"]}}),
    ("admin", "POST", B, {"json": {"pool": "web-a", "skus": ["LEAN-1", "LEAN-1"]}}),
    ("admin", "POST", B, {"json": {"pool": "web-a", "skus": [f"S-{i}" for i in range(501)]}}),
    ("admin", "POST", B, {"json": {"pool": "web-a", "skus": []}}),
    ("admin", "POST", B, {"json": {"pool": "web-a", "skus": ["LEAN-1"], "x": 1}}),
    ("admin", "POST", B, {"json": {"pool": "nope", "skus": ["LEAN-1"]}}),
    ("admin", "POST", B, {"json": {"location_id": "ghost", "skus": ["LEAN-1"]}}),
    ("admin", "POST", B, {"content": b'{"pool": "web-a", "pool": "x"}', "headers": JSON}),
    ("bound", "POST", B, {"json": {"pool": "web-a", "skus": ["LEAN-1"]}}),
    ("bound", "POST", B, {"json": {"location_id": "store-b", "skus": ["LEAN-1"]}}),
    ("bound", "POST", B, {"json": {"location_id": "store-a", "skus": ["LEAN-1"]}}),
    ("none", "POST", B, {"json": {"pool": "web-a", "skus": ["LEAN-1"]}}),
]


def _answer(r: httpx.Response) -> tuple[int, dict[str, str], str]:
    headers = {name: r.headers[name] for name in COMPARED_HEADERS if name in r.headers}
    return r.status_code, headers, VOLATILE.sub(r'"\1":"…"', r.text)


async def _seed(app: FastAPI, key: str) -> None:
    async with _client(app, key) as c:
        for loc in ("store-a", "store-b"):
            body = {"name": loc, "kind": "store", "lat": 52.5, "lon": 13.4, "pickup": True}
            assert (await c.put(f"/v1/locations/{loc}", json=body)).is_success
        assert (await c.put("/v1/stock/store-a/LEAN-1", json={"on_hand": 5})).is_success
        supply = {"qty": 2, "expected_at": "2026-12-01T10:00:00Z"}
        assert (await c.put("/v1/stock/store-b/LEAN-1/incoming/po-1", json=supply)).is_success
        pool = {
            "name": "Web",
            "channels": ["web"],
            "locations": [{"location_id": "store-a", "buffer": 1}, {"location_id": "store-b"}],
        }
        assert (await c.put("/v1/pools/web-a", json=pool)).is_success


async def test_lean_path_answers_as_fastapi_does(
    app: FastAPI, fastapi_app: FastAPI, make_key: KeyFactory
) -> None:
    assert isinstance(app, LeanApp)
    assert app.lane is not None
    assert isinstance(fastapi_app, LeanApp)
    assert fastapi_app.lane is None
    keys = [_keys(app.state.services), _keys(fastapi_app.state.services)]
    await _seed(app, keys[0]["admin"])
    await _seed(fastapi_app, keys[1]["admin"])
    specials = {"none": "", "bad": "ssk_000000000000_" + "x" * 32}
    for who, method, path, kwargs in REQUESTS:
        answers = []
        for application, made in zip((app, fastapi_app), keys, strict=True):
            key = made.get(who) or specials.get(who, "")
            async with _client(application, key) as c:
                if who == "basic":
                    c.headers["Authorization"] = "Basic dXNlcjpwdw=="
                elif who == "none":
                    del c.headers["Authorization"]
                answers.append(_answer(await c.request(method, path, **kwargs)))
        lean, plain = answers
        print(lean[0], who, method, path, lean[2][:90])
        assert lean == plain, f"{who} {method} {path} {kwargs}"


def test_lean_path_leaves_the_openapi_document_unchanged(settings: Settings) -> None:
    lean = create_app(settings).openapi()
    plain = create_app(settings.model_copy(update={"lean_path": False})).openapi()
    assert lean == plain


def _shape(path: str) -> list[str | None]:
    return [None if s.startswith("{") else s for s in path.split("/")]


def test_every_lean_route_is_a_documented_operation_no_other_route_shadows(
    settings: Settings,
) -> None:
    app = create_app(settings)
    assert isinstance(app, LeanApp)
    assert app.lane is not None
    paths = app.openapi()["paths"]
    for route in app.lane.routes:
        assert route.method.lower() in paths[route.path_format], route
        mine = _shape(route.path_format)
        for other, operations in paths.items():
            theirs = _shape(other)
            if other == route.path_format or route.method.lower() not in operations:
                continue
            overlaps = len(theirs) == len(mine) and all(
                a is None or b is None or a == b for a, b in zip(mine, theirs, strict=True)
            )
            assert not overlaps, f"{other} could take requests of lean {route.path_format}"


async def test_lean_routes_are_counted_and_logged_by_their_template(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    r = await client.get("/v1/reservations/nothing-here")
    assert r.status_code == 404
    assert r.headers["x-request-id"]  # the request log ran
    metrics = (await client.get("/metrics")).text
    assert (
        'stocksync_http_requests_total{method="GET",route="/v1/reservations/{reservation_id}",'
        'status="404"} 1.0'
    ) in metrics
