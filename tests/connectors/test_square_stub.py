"""The Square stub refuses what Square documents it refuses, with Square's error shape, so a
connector that asks Square for something it does not take fails here first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.square_payloads import adjustment, ago, line_item, order, transfer
from tests.support.square_stub import TOKEN, SquareStub

CHANGES = "/v2/inventory/changes/batch-retrieve"
COUNTS = "/v2/inventory/counts/batch-retrieve"
ORDERS = "/v2/orders/batch-retrieve"
ITEM, LOC = "W62UWFY35CWMYGVWK6TWJDNI", "C6W5YS5QM06F5"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Square-Version": "2025-08-20"}


@pytest.fixture
async def square() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=SquareStub().app())
    async with httpx.AsyncClient(transport=transport, base_url="https://square.test") as c:
        yield c


def only_error(response: httpx.Response) -> dict[str, Any]:
    [error] = response.json()["errors"]
    assert set(error) <= {"category", "code", "detail", "field"}
    return dict(error)


@pytest.mark.parametrize(
    ("path", "body", "code", "field"),
    [
        (CHANGES, {"types": ["PHYSICAL_COUNT", "TRANSFER"]}, "INVALID_ENUM_VALUE", "types"),
        (CHANGES, {"types": ["SALE"]}, "INVALID_ENUM_VALUE", "types"),
        (CHANGES, {"states": ["ON_SHELF"]}, "INVALID_ENUM_VALUE", "states"),
        (CHANGES, {"location_id": "C6W5YS5QM06F5"}, "UNKNOWN_BODY_PARAMETER", "location_id"),
        (CHANGES, {"limit": 1001}, "VALUE_TOO_HIGH", "limit"),
        (CHANGES, {"limit": 0}, "VALUE_TOO_LOW", "limit"),
        (CHANGES, {"updated_after": "yesterday"}, "INVALID_TIME", "updated_after"),
        (COUNTS, {"types": ["ADJUSTMENT"]}, "UNKNOWN_BODY_PARAMETER", "types"),
        (COUNTS, {"updated_after": "2024-01-01T00:00:00"}, "INVALID_TIME", "updated_after"),
        (ORDERS, {}, "MISSING_REQUIRED_PARAMETER", "order_ids"),
        (ORDERS, {"order_ids": ["O"] * 101}, "ARRAY_LENGTH_TOO_LONG", "order_ids"),
        (ORDERS, {"order_ids": ["O"], "cursor": "x"}, "UNKNOWN_BODY_PARAMETER", "cursor"),
    ],
)
async def test_stub_refuses_what_square_refuses_with_400_and_squares_error(
    square: httpx.AsyncClient, path: str, body: dict[str, Any], code: str, field: str
) -> None:
    r = await square.post(path, json=body, headers=HEADERS)
    assert r.status_code == 400
    error = only_error(r)
    assert (error["category"], error["code"], error["field"]) == (
        "INVALID_REQUEST_ERROR",
        code,
        field,
    )


async def test_stub_serves_physical_counts_and_adjustments_never_a_transfer() -> None:
    stub = SquareStub(
        changes=[
            transfer("TR1", ITEM, LOC, "L9PJX0H2D0M6V", "1", ago(minutes=2)),
            adjustment("S1", ITEM, LOC, "1", ago(minutes=1)),
        ]
    )
    transport = httpx.ASGITransport(app=stub.app())
    async with httpx.AsyncClient(transport=transport, base_url="https://square.test") as square:
        types = {"types": ["PHYSICAL_COUNT", "ADJUSTMENT"]}
        for body in ({}, types):
            r = await square.post(CHANGES, json=body, headers=HEADERS)
            assert r.status_code == 200
            assert [c["type"] for c in r.json()["changes"]] == ["ADJUSTMENT"]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"Authorization": f"Bearer {TOKEN}"}, 200, None),  # the app's default version
        ({**HEADERS, "Square-Version": "20250820"}, 400, "INVALID_SQUARE_VERSION_FORMAT"),
        ({"Square-Version": "2025-08-20"}, 401, "UNAUTHORIZED"),
    ],
)
async def test_stub_answers_versions_and_tokens_as_square_documents(
    square: httpx.AsyncClient, headers: dict[str, str], status: int, code: str | None
) -> None:
    r = await square.post(COUNTS, json={}, headers=headers)
    assert r.status_code == status
    if code is not None:
        assert only_error(r)["code"] == code


async def test_stub_refuses_a_body_that_is_not_a_json_object(square: httpx.AsyncClient) -> None:
    r = await square.post(CHANGES, content=b"[1, 2]", headers=HEADERS)
    assert r.status_code == 400
    assert only_error(r)["code"] == "EXPECTED_JSON_BODY"


async def test_stub_takes_a_cursor_only_with_the_body_it_was_issued_for() -> None:
    changes = [adjustment(f"S{i}", ITEM, LOC, "1", ago(minutes=10 - i)) for i in range(3)]
    transport = httpx.ASGITransport(app=SquareStub(changes=changes).app())
    async with httpx.AsyncClient(transport=transport, base_url="https://square.test") as square:
        body = {"location_ids": [LOC], "limit": 100}
        first = (await square.post(CHANGES, json=body, headers=HEADERS)).json()
        cursor = first["cursor"]
        other = await square.post(CHANGES, json={"cursor": cursor}, headers=HEADERS)
        forged = await square.post(CHANGES, json={**body, "cursor": "2"}, headers=HEADERS)
        right = await square.post(CHANGES, json={**body, "cursor": cursor}, headers=HEADERS)

    assert [r.status_code for r in (other, forged, right)] == [400, 400, 200]
    assert only_error(other)["code"] == only_error(forged)["code"] == "INVALID_CURSOR"
    assert [c["adjustment"]["id"] for c in right.json()["changes"]] == ["S2"]


async def test_stub_orders_leave_out_unknown_ids_and_keep_to_a_location() -> None:
    stub = SquareStub(
        orders=[
            order("O1", LOC, [line_item(ITEM, "1")]),
            order("O2", "L9PJX0H2D0M6V", [line_item(ITEM, "1")]),
        ]
    )
    transport = httpx.ASGITransport(app=stub.app())
    async with httpx.AsyncClient(transport=transport, base_url="https://square.test") as square:
        every = await square.post(ORDERS, json={"order_ids": ["O1", "O2", "NO"]}, headers=HEADERS)
        here = await square.post(
            ORDERS, json={"order_ids": ["O1", "O2"], "location_id": LOC}, headers=HEADERS
        )
    assert [o["id"] for o in every.json()["orders"]] == ["O1", "O2"]
    assert [o["id"] for o in here.json()["orders"]] == ["O1"]
