"""Request ids and the request log: one line per request, with its id, key id and route; no
secret, no customer data."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.support.api import KeyFactory, Seed, as_key, hold
from tests.support.logs import CapturedLogs

CUSTOMER_REF = "crm-7f3a9c-customer"


async def test_request_log_line_carries_request_id_key_id_and_route_but_no_secret(
    app: FastAPI, make_key: KeyFactory, seed: Seed, sku: str, json_logs: CapturedLogs
) -> None:
    await seed(sku, 2)
    key = make_key("read,reserve")
    _, key_id, secret = key.split("_", 2)
    async with as_key(app, key) as c:
        body = hold("log-r1", sku, customer_ref=CUSTOMER_REF)
        r = await c.post("/v1/reservations", json=body, headers={"X-Request-Id": "req-log-1"})
        assert r.status_code == 201, r.text
        r = await c.get(f"/v1/stock/store-a/{sku}", headers={"X-Request-Id": "req-log-2"})
        assert r.status_code == 200
    [reserved] = json_logs.find(event="request", request_id="req-log-1")
    assert reserved["key_id"] == key_id
    assert reserved["actor"] == f"api:{key_id}"
    assert reserved["route"] == "/v1/reservations"
    assert reserved["method"] == "POST"
    assert reserved["status"] == 201
    assert reserved["outcome"] == "ok"
    assert reserved["duration_ms"] >= 0
    [read] = json_logs.find(event="request", request_id="req-log-2")
    assert read["route"] == "/v1/stock/{location_id}/{sku}"
    # Neither the key's secret nor the customer reference is logged, by anyone.
    for leak in (secret, key, CUSTOMER_REF):
        assert leak not in json_logs.text
    # Nor the raw paths by the server (the test's own client, httpx, logs its URLs).
    server_lines = str([line for line in json_logs.lines() if line["logger"] != "httpx"])
    for leak in (sku, "log-r1"):
        assert leak not in server_lines


async def test_request_log_names_the_problem_code_as_outcome(
    client: httpx.AsyncClient, json_logs: CapturedLogs
) -> None:
    r = await client.get("/v1/reservations/no-such-hold", headers={"X-Request-Id": "req-404"})
    assert r.status_code == 404
    [line] = json_logs.find(event="request", request_id="req-404")
    assert line["status"] == 404
    assert line["outcome"] == "not_found"
    assert line["route"] == "/v1/reservations/{reservation_id}"


async def test_request_without_a_valid_key_is_logged_without_a_key_id(
    anon: httpx.AsyncClient, json_logs: CapturedLogs
) -> None:
    bad = "ssk_0123456789ab_" + "x" * 32
    headers = {"Authorization": f"Bearer {bad}", "X-Request-Id": "req-401"}
    r = await anon.get("/v1/locations", headers=headers)
    assert r.status_code == 401
    assert r.json()["request_id"] == "req-401"
    [line] = json_logs.find(event="request", request_id="req-401")
    assert line["outcome"] == "unauthorized"
    assert "key_id" not in line
    assert bad not in json_logs.text


@pytest.mark.parametrize(
    "sent", ["abc", "0f8fad5b-d9cb-469f-a165-70867728950e", "lb:trace.42_x", "r" * 64]
)
async def test_x_request_id_is_accepted_when_sane(anon: httpx.AsyncClient, sent: str) -> None:
    r = await anon.get("/healthz", headers={"X-Request-Id": sent})
    assert r.headers["X-Request-Id"] == sent


@pytest.mark.parametrize("sent", ["r" * 65, "has space", "semi;colon", 'quote"d', "", "é"])
async def test_x_request_id_is_replaced_when_not_sane(anon: httpx.AsyncClient, sent: str) -> None:
    r = await anon.get("/healthz", headers={"X-Request-Id": sent.encode()})
    echoed = r.headers["X-Request-Id"]
    assert echoed != sent
    assert len(echoed) == 32
    assert int(echoed, 16) >= 0  # a new id: 32 hex digits


async def test_request_id_is_generated_and_differs_per_request(anon: httpx.AsyncClient) -> None:
    first = (await anon.get("/healthz")).headers["X-Request-Id"]
    second = (await anon.get("/healthz")).headers["X-Request-Id"]
    assert first != second


async def test_problem_bodies_echo_the_request_id(client: httpx.AsyncClient) -> None:
    headers = {"X-Request-Id": "req-problem"}
    r = await client.get("/v1/reservations/nope", headers=headers)
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["request_id"] == r.headers["X-Request-Id"] == "req-problem"
    r = await client.post("/v1/reservations", json={"reservation_id": 1}, headers=headers)
    assert r.status_code == 422
    assert r.json()["request_id"] == "req-problem"
    big = b"{" + b" " * (70 * 1024) + b"}"
    r = await client.post("/v1/reservations", content=big, headers=headers)
    assert r.status_code == 413
    assert r.json()["request_id"] == r.headers["X-Request-Id"] == "req-problem"


async def test_unhandled_error_is_a_logged_500_problem_with_the_request_id(
    app: FastAPI, anon: httpx.AsyncClient, json_logs: CapturedLogs
) -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/test-broken", broken)
    r = await anon.get("/test-broken", headers={"X-Request-Id": "req-500"})
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["X-Request-Id"] == "req-500"
    assert r.json()["code"] == "internal_error"
    assert r.json()["request_id"] == "req-500"
    failed, request = json_logs.find(request_id="req-500")
    assert "RuntimeError: a bug" in failed["exception"]
    assert (request["event"], request["level"]) == ("request", "error")
    assert (request["status"], request["outcome"]) == (500, "internal_error")


async def test_probes_are_logged_at_debug(anon: httpx.AsyncClient, json_logs: CapturedLogs) -> None:
    await anon.get("/healthz", headers={"X-Request-Id": "req-probe"})
    [line] = json_logs.find(event="request", request_id="req-probe")
    assert line["level"] == "debug"
