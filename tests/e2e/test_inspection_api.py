"""GET /v1/stock/{location_id}?bucket=quality_control: the store page's inspection queue."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI

from stocksync.api.deps import Services
from tests.support.api import KeyFactory, Seed, as_key
from tests.support.inspection import bucket_event


async def test_inspection_queue_lists_the_positions_awaiting_inspection(
    client: httpx.AsyncClient, seed: Seed, services: Services, sku: str
) -> None:
    await seed(sku, 4)
    r = await client.get("/v1/stock/store-a", params={"bucket": "quality_control"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "location_id": "store-a",
        "bucket": "quality_control",
        "waiting": 0,
        "positions": [],
    }
    await bucket_event(services.store, sku, "store-a", 2)
    r = await client.get("/v1/stock/store-a", params={"bucket": "quality_control"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["waiting"] == 1
    (row,) = body["positions"]
    assert (row["sku"], row["location_id"], row["quality_control"]) == (sku, "store-a", 2)
    assert (row["on_hand"], row["available"]) == (4, 4)
    assert datetime.fromisoformat(row["since"]).tzinfo is not None
    position = (await client.get(f"/v1/stock/store-a/{sku}")).json()
    assert {k: v for k, v in row.items() if k != "since"} == position


@pytest.mark.parametrize(
    "params",
    [
        {},  # the bucket is required: there is no listing of every position
        {"bucket": "on_hand"},
        {"bucket": "quality_control", "limit": "0"},
        {"bucket": "quality_control", "limit": "201"},
        {"bucket": "quality_control", "limit": "many"},
    ],
)
async def test_inspection_queue_refuses_bad_queries(
    client: httpx.AsyncClient, seed: Seed, sku: str, params: dict[str, str]
) -> None:
    await seed(sku, 1)
    r = await client.get("/v1/stock/store-a", params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "validation_error"


async def test_inspection_queue_of_unknown_location_is_not_found(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/v1/stock/nowhere", params={"bucket": "quality_control"})
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "not_found"


async def test_inspection_queue_keeps_to_the_key_s_locations(
    app: FastAPI, anon: httpx.AsyncClient, seed: Seed, services: Services, make_key: KeyFactory
) -> None:
    sku = "LAMP-" + uuid.uuid4().hex[:8]
    await seed(sku, 1, "store-a")
    await seed(sku, 1, "store-b")
    await bucket_event(services.store, sku, "store-b", 1)
    async with as_key(app, make_key("read", "store-a")) as staff:
        r = await staff.get("/v1/stock/store-b", params={"bucket": "quality_control"})
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "forbidden"
        r = await staff.get("/v1/stock/store-a", params={"bucket": "quality_control"})
        assert (r.status_code, r.json()["positions"]) == (200, [])
    r = await anon.get("/v1/stock/store-b", params={"bucket": "quality_control"})
    assert r.status_code == 401


async def test_a_return_for_inspection_waits_in_the_queue_until_moved_out(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 3)
    hold = {
        "reservation_id": f"r-{sku}",
        "channel": "web",
        "lines": [{"sku": sku, "location_id": "store-a", "qty": 2}],
    }
    assert (await client.post("/v1/reservations", json=hold)).status_code == 201
    assert (await client.post(f"/v1/reservations/r-{sku}/fulfill")).status_code == 200
    back = {
        "return_id": f"ret-{sku}",
        "reservation_id": f"r-{sku}",
        "lines": [{"sku": sku, "location_id": "store-a", "qty": 2, "disposition": "inspect"}],
    }
    r = await client.post("/v1/returns", json=back)
    assert r.status_code == 201, r.text
    queue = (await client.get("/v1/stock/store-a", params={"bucket": "quality_control"})).json()
    assert [(p["sku"], p["quality_control"]) for p in queue["positions"]] == [(sku, 2)]

    async def move(to: str, event_id: str) -> None:
        body = {"from": "quality_control", "to": to, "qty": 1, "reason": "inspection"}
        body |= {"source": "store-page", "source_event_id": event_id}
        r = await client.post(f"/v1/stock/store-a/{sku}/moves", json=body)
        assert r.status_code == 200, r.text

    await move("on_hand", f"{sku}-1")  # one passes: it stays listed with the other
    queue = (await client.get("/v1/stock/store-a", params={"bucket": "quality_control"})).json()
    assert [(p["sku"], p["quality_control"]) for p in queue["positions"]] == [(sku, 1)]
    await move("damaged", f"{sku}-2")  # the last one is damaged: the queue is empty
    queue = (await client.get("/v1/stock/store-a", params={"bucket": "quality_control"})).json()
    assert (queue["waiting"], queue["positions"]) == (0, [])
    position = (await client.get(f"/v1/stock/store-a/{sku}")).json()
    assert (position["on_hand"], position["damaged"], position["quality_control"]) == (2, 1, 0)
