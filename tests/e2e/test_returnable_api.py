"""GET /v1/reservations/{id}/returnable and /v1/holds/{code}/returnable: the returns desk's read."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.api import KeyFactory, Seed, as_key


async def online_order(
    client: httpx.AsyncClient, sku: str, *, fulfil: bool = True
) -> dict[str, Any]:
    """Two lines of ``sku`` (3 units) from the warehouse, for a customer; fulfilled."""
    rid = f"web-{uuid.uuid4().hex[:10]}"
    body = {
        "reservation_id": rid,
        "channel": "web",
        "customer_ref": "crm-77",
        "lines": [
            {"sku": sku, "location_id": "wh-1", "qty": 2},
            {"sku": sku + "-B", "location_id": "wh-1", "qty": 1},
        ],
    }
    r = await client.post("/v1/reservations", json=body)
    assert r.status_code == 201, r.text
    if fulfil:
        r = await client.post(f"/v1/reservations/{rid}/fulfill")
        assert r.status_code == 200, r.text
    order: dict[str, Any] = r.json()
    return order


@pytest.fixture
async def stocked(seed: Seed, sku: str) -> None:
    await seed(sku, 5, "wh-1", kind="warehouse")
    await seed(sku + "-B", 5, "wh-1", kind="warehouse")
    await seed(sku, 0, "store-a")


@pytest.mark.usefixtures("stocked")
async def test_a_desk_sees_what_of_any_order_may_come_back(
    app: FastAPI, client: httpx.AsyncClient, make_key: KeyFactory, sku: str
) -> None:
    order = await online_order(client, sku)
    rid, code = order["reservation_id"], order["hold_code"]
    desk = make_key("read,stock:write", "store-a")
    async with as_key(app, desk) as c:
        # The reservation itself is not the desk's to see (it was made elsewhere, by another key).
        assert (await c.get(f"/v1/reservations/{rid}")).status_code == 404
        r = await c.get(f"/v1/reservations/{rid}/returnable")
        assert r.status_code == 200, r.text
        assert r.json() == {
            "reservation_id": rid,
            "hold_code": code,
            "state": "fulfilled",
            "lines": [
                {"sku": sku, "fulfilled": 2, "returned": 0, "returnable": 2},
                {"sku": sku + "-B", "fulfilled": 1, "returned": 0, "returnable": 1},
            ],
            "return_ids": [],
        }
        back = {
            "return_id": f"ret-{rid}",
            "reservation_id": rid,
            "lines": [{"sku": sku, "location_id": "store-a", "qty": 1, "disposition": "inspect"}],
        }
        assert (await c.post("/v1/returns", json=back)).status_code == 201
        by_code = await c.get(f"/v1/holds/{code.lower().replace('-', '')}/returnable")
        assert by_code.status_code == 200, by_code.text
        assert by_code.json()["lines"][0] == {
            "sku": sku,
            "fulfilled": 2,
            "returned": 1,
            "returnable": 1,
        }
        assert by_code.json()["return_ids"] == [f"ret-{rid}"]
        assert "customer_ref" not in by_code.json()


@pytest.mark.usefixtures("stocked")
async def test_an_order_not_yet_collected_has_nothing_returnable(
    client: httpx.AsyncClient, sku: str
) -> None:
    order = await online_order(client, sku, fulfil=False)
    r = await client.get(f"/v1/reservations/{order['reservation_id']}/returnable")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "held"
    assert [line["returnable"] for line in r.json()["lines"]] == [0, 0]
    assert [line["fulfilled"] for line in r.json()["lines"]] == [0, 0]


@pytest.mark.usefixtures("stocked")
async def test_the_returnable_read_needs_stock_write(
    app: FastAPI, client: httpx.AsyncClient, make_key: KeyFactory, anon: httpx.AsyncClient, sku: str
) -> None:
    order = await online_order(client, sku)
    rid, code = order["reservation_id"], order["hold_code"]
    async with as_key(app, make_key("read,reserve", "store-a")) as c:
        for path in (f"/v1/reservations/{rid}/returnable", f"/v1/holds/{code}/returnable"):
            r = await c.get(path)
            assert r.status_code == 403, r.text
            assert r.json()["code"] == "forbidden"
    assert (await anon.get(f"/v1/reservations/{rid}/returnable")).status_code == 401


async def test_the_returnable_read_of_an_unknown_order_is_not_found(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/v1/reservations/no-such-order/returnable")
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = await client.get("/v1/holds/ZZZ-ZZZZ/returnable")
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = await client.get("/v1/holds/not-a-code/returnable")
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")
