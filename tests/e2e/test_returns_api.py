"""POST /v1/returns and GET /v1/returns/{id} through HTTP: linked and unlinked returns, the
reservation's returned units, the ledger's record of a pruned reservation, scopes, and every
refusal a problem with a stable code that changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from stocksync.api.deps import Services
from stocksync.store.outbox import decode_event
from tests.support.api import KeyFactory, Seed, as_key, hold, position, post_ok
from tests.support.keyspace import namespace_keys

RETURNS = "/v1/returns"


def ret(
    return_id: str,
    *lines: dict[str, Any],
    reservation_id: str | None = "sale",
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"return_id": return_id, "lines": list(lines), **extra}
    if reservation_id is not None:
        body["reservation_id"] = reservation_id
    return body


def line(
    sku: str, qty: int = 1, disposition: str = "restock", loc: str = "store-a"
) -> dict[str, Any]:
    return {"sku": sku, "location_id": loc, "qty": qty, "disposition": disposition}


async def sold(client: httpx.AsyncClient, seed: Seed, sku: str, qty: int = 3) -> None:
    """Reservation ``sale`` of ``qty`` units at store-a, fulfilled; store-b has none."""
    await seed(sku, 10)
    await seed(sku, 0, "store-b")
    await post_ok(client, "/v1/reservations", hold("sale", sku, qty=qty))
    await post_ok(client, "/v1/reservations/sale/fulfill")


async def refused_unchanged(
    services: Services, client: httpx.AsyncClient, payload: Any, status: int, code: str
) -> dict[str, Any]:
    """POST ``payload``: the problem ``status``/``code``, every key as it was before."""
    before = await namespace_keys(services.store.client, services.settings.namespace)
    r = await client.post(RETURNS, json=payload)
    assert (r.status_code, r.json().get("code")) == (status, code), r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert await namespace_keys(services.store.client, services.settings.namespace) == before
    problem: dict[str, Any] = r.json()
    return problem


async def test_a_return_is_created_read_and_shown_on_its_reservation(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await sold(client, seed, sku)
    payload = ret("ret-1", line(sku, 1, "inspect", "store-b"), line(sku, 1))
    r = await client.post(RETURNS, json=payload)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made | {"created_at": None} == {
        "return_id": "ret-1",
        "reservation_id": "sale",
        "lines": [line(sku, 1), line(sku, 1, "inspect", "store-b")],
        "created_at": None,
        "replayed": False,
    }
    assert (await client.get(f"{RETURNS}/ret-1")).json() == made
    again = await client.post(RETURNS, json=payload)
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert again.json() == made | {"replayed": True}
    shown = (await client.get("/v1/reservations/sale")).json()
    assert (shown["returned_units"], shown["return_ids"]) == ({sku: 2}, ["ret-1"])
    assert (await position(client, sku))["on_hand"] == 8
    assert (await position(client, sku, "store-b"))["quality_control"] == 1
    assert (await client.get(f"{RETURNS}/ret-404")).status_code == 404


async def test_return_refusals_are_problems_that_change_nothing(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await sold(client, seed, sku, 3)
    await post_ok(client, RETURNS, ret("ret-1", line(sku, 2)))
    exceeds = await refused_unchanged(
        services, client, ret("ret-2", line(sku, 2, "damaged")), 409, "return_exceeds_fulfilled"
    )
    assert {k: exceeds[k] for k in ("sku", "fulfilled", "returned", "requested")} == {
        "sku": sku,
        "fulfilled": 3,
        "returned": 2,
        "requested": 2,
    }
    conflict = ret("ret-1", line(sku, 1))
    await refused_unchanged(services, client, conflict, 409, "idempotency_conflict")
    await post_ok(client, "/v1/reservations", hold("held", sku))
    held = ret("ret-3", line(sku), reservation_id="held")
    problem = await refused_unchanged(services, client, held, 409, "reservation_not_fulfilled")
    assert problem["state"] == "held"
    unknown = ret("ret-3", line(sku), reservation_id="nothing")
    await refused_unchanged(services, client, unknown, 404, "not_found")
    nowhere = ret("ret-3", line(sku, loc="store-nowhere"))
    await refused_unchanged(services, client, nowhere, 404, "not_found")
    north = {"name": "North", "kind": "store", "domain": "north"}
    assert (await client.put("/v1/locations/store-n", json=north)).status_code == 201
    far = ret("ret-3", line(sku, loc="store-n"))
    await refused_unchanged(services, client, far, 409, "cross_domain")
    spans = ret("till-1", line(sku), line(sku, loc="store-n"), reservation_id=None)
    await refused_unchanged(services, client, spans, 409, "cross_domain")


async def test_invalid_returns_are_422_and_change_nothing(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await sold(client, seed, sku)
    for payload in (
        ret("ret-1", line(sku), line(sku, 2, "inspect")),  # (sku, location) twice
        ret("ret-1"),
        ret("ret-1", *(line(f"S-{i}") for i in range(101))),
        ret("ret-1", line(sku, 0)),
        ret("ret-1", line(sku, 10_001)),
        ret("ret-1", line(sku, disposition="lost")),
        ret("ret-1", {**line(sku), "note": "x"}),
        ret("ret-1", line(sku), refund=10),
        ret("bad id", line(sku)),
        ret("ret-1", line(sku), reservation_id="bad id"),
    ):
        await refused_unchanged(services, client, payload, 422, "validation_error")


async def test_an_unlinked_till_return_needs_stock_write(
    app: FastAPI,
    client: httpx.AsyncClient,
    services: Services,
    make_key: KeyFactory,
    seed: Seed,
    sku: str,
) -> None:
    await seed(sku, 1)
    till = ret("till-1", line(sku, 2), reservation_id=None, source="pos")
    async with as_key(app, make_key("read,reserve")) as reserver:
        await refused_unchanged(services, reserver, till, 403, "forbidden")
    async with as_key(app, make_key("stock:write", "store-b")) as elsewhere:
        await refused_unchanged(services, elsewhere, till, 403, "forbidden")
    async with as_key(app, make_key("stock:write", "store-a")) as staff:
        made = await post_ok(staff, RETURNS, till)
    assert (made["reservation_id"], (await position(client, sku))["on_hand"]) == (None, 3)


async def test_a_linked_return_needs_access_to_the_reservation(
    app: FastAPI,
    client: httpx.AsyncClient,
    services: Services,
    make_key: KeyFactory,
    seed: Seed,
    sku: str,
) -> None:
    await seed(sku, 5)
    await seed(sku, 0, "store-b")
    async with as_key(app, make_key("read,reserve")) as owner:
        await post_ok(owner, "/v1/reservations", hold("sale", sku, qty=2))
        await post_ok(owner, "/v1/reservations/sale/fulfill")
        payload = ret("ret-1", line(sku))
        async with as_key(app, make_key("read")) as reader:
            await refused_unchanged(services, reader, payload, 403, "forbidden")
        async with as_key(app, make_key("reserve")) as stranger:
            await refused_unchanged(services, stranger, payload, 404, "not_found")
        async with as_key(app, make_key("reserve", "store-b")) as other_store:
            await refused_unchanged(services, other_store, payload, 403, "forbidden")
            at_b = ret("ret-1", line(sku, loc="store-b"))
            await refused_unchanged(services, other_store, at_b, 404, "not_found")
        async with as_key(app, make_key("reserve,read", "store-a")) as staff:
            made = await post_ok(staff, RETURNS, payload)
            assert (await staff.get(f"{RETURNS}/ret-1")).json() == made
        made = await post_ok(owner, RETURNS, ret("ret-2", line(sku, loc="store-b")))
        assert made["reservation_id"] == "sale"
    async with as_key(app, make_key("read", "store-a")) as store_a:
        assert (await store_a.get(f"{RETURNS}/ret-2")).status_code == 404


async def test_a_returns_desk_takes_back_an_order_sold_elsewhere_at_its_own_store(
    app: FastAPI,
    client: httpx.AsyncClient,
    services: Services,
    make_key: KeyFactory,
    seed: Seed,
    sku: str,
) -> None:
    """Bought online (fulfilled at store-a by the web shop's key), returned at store-b: the
    desk's stock:write key bound to store-b needs no access to the web shop's reservation, only
    to its own store."""
    await sold(client, seed, sku, qty=2)
    async with as_key(app, make_key("stock:write", "store-b")) as desk_b:
        await refused_unchanged(services, desk_b, ret("desk-a", line(sku)), 403, "forbidden")
        made = await post_ok(desk_b, RETURNS, ret("desk-b", line(sku, 2, "inspect", "store-b")))
        over = ret("desk-c", line(sku, 1, "restock", "store-b"))
        await refused_unchanged(services, desk_b, over, 409, "return_exceeds_fulfilled")
    assert made["reservation_id"] == "sale"
    at_b = await position(client, sku, "store-b")
    assert (at_b["on_hand"], at_b["quality_control"]) == (0, 2)


async def test_a_reservation_pruned_from_redis_takes_returns_by_the_ledgers_record(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await sold(client, seed, sku, 3)
    await post_ok(client, RETURNS, ret("ret-1", line(sku, 1)))
    raw = await services.store.client.xrange(services.store.keys.outbox)
    services.ledger.record([decode_event(services.settings.namespace, i, f) for i, f in raw])
    await services.store.client.delete(services.store.keys.reservation("sale"))  # retention
    made = await post_ok(client, RETURNS, ret("ret-2", line(sku, 1, "damaged", "store-b")))
    assert made["reservation_id"] == "sale"
    await refused_unchanged(
        services, client, ret("ret-3", line(sku, 2)), 409, "return_exceeds_fulfilled"
    )
    archived = (await client.get("/v1/reservations/sale")).json()
    assert archived["state"] == "fulfilled"
    assert (archived["returned_units"], archived["return_ids"]) == ({sku: 2}, ["ret-1", "ret-2"])


async def test_two_clients_returning_every_unit_at_once_have_one_winner(
    app: FastAPI, client: httpx.AsyncClient, make_key: KeyFactory, seed: Seed, sku: str
) -> None:
    await sold(client, seed, sku, 3)
    gate = asyncio.Event()

    async def attempt(c: httpx.AsyncClient, return_id: str, loc: str) -> httpx.Response:
        await gate.wait()
        return await c.post(RETURNS, json=ret(return_id, line(sku, 3, "inspect", loc)))

    async with as_key(app, make_key()) as one, as_key(app, make_key()) as two:
        tasks = [
            asyncio.create_task(attempt(one, "ret-a", "store-a")),
            asyncio.create_task(attempt(two, "ret-b", "store-b")),
        ]
        await asyncio.sleep(0)  # let both tasks reach the gate
        gate.set()
        responses = await asyncio.gather(*tasks)
    answers = sorted((r.status_code, r.json().get("code")) for r in responses)
    assert answers == [(201, None), (409, "return_exceeds_fulfilled")]
    qc = [(await position(client, sku, loc))["quality_control"] for loc in ("store-a", "store-b")]
    assert sorted(qc) == [0, 3]


async def test_returned_units_are_counted_by_disposition_once(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await sold(client, seed, sku, 3)
    payload = ret("ret-1", line(sku, 2), line(sku, 1, "damaged", "store-b"))
    await post_ok(client, RETURNS, payload)
    await post_ok(client, RETURNS, payload)  # a replay counts nothing
    text = (await client.get("/metrics")).text
    assert 'stocksync_returns_total{disposition="restock"} 2.0' in text
    assert 'stocksync_returns_total{disposition="damaged"} 1.0' in text
