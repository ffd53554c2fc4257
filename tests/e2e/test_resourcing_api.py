"""Re-sourcing through HTTP: holds at risk after a till sale, finding a customer's holds, and
moving a hold to another store — ending with the whole till-sale-of-the-last-unit story."""

from __future__ import annotations

import json
from typing import Any, cast

import httpx

from stocksync.api.deps import Services
from stocksync.ledger.history import reservation_record
from stocksync.store.outbox import decode_event
from tests.support.api import KeyFactory, Seed, hold, position, post_ok


async def till_sale(client: httpx.AsyncClient, sku: str, loc: str, event_id: str) -> None:
    body = {"delta": -1, "reason": "sale", "source": "pos", "source_event_id": event_id}
    r = await client.post(f"/v1/stock/{loc}/{sku}/adjustments", json=body)
    assert r.status_code == 200, r.text


async def record_outbox(services: Services) -> None:
    """What the ledger writer would do: copy every outbox event into the ledger."""
    store = services.store
    raw = cast("list[tuple[str, dict[str, str]]]", await store.client.xrange(store.keys.outbox))
    ns = services.settings.namespace
    services.ledger.record([decode_event(ns, sid, fields) for sid, fields in raw])


async def test_till_sale_of_the_last_unit_then_move_and_pickup_elsewhere(
    client: httpx.AsyncClient, seed: Seed, sku: str, services: Services
) -> None:
    await seed(sku, 1, "store-a")
    await seed(sku, 2, "store-b")
    chat = hold("chat-4711", sku, "store-a", customer_ref="crm-88231")
    created = await post_ok(client, "/v1/reservations", chat)
    assert created["at_risk"] is False

    # The till sells the last unit at A: it cannot be refused, so the hold is at risk.
    await till_sale(client, sku, "store-a", "till-a-1")
    r = await client.get("/v1/reservations", params={"at_risk": "true"})
    assert [x["reservation_id"] for x in r.json()["reservations"]] == ["chat-4711"]
    assert r.json()["reservations"][0]["at_risk"] is True
    r = await client.get("/v1/reservations", params={"at_risk": "true", "location_id": "store-b"})
    assert r.json()["reservations"] == []
    r = await client.get("/v1/reservations", params={"customer_ref": "crm-88231"})
    assert [x["reservation_id"] for x in r.json()["reservations"]] == ["chat-4711"]

    # Move it to B, which has stock.
    moved = await post_ok(
        client,
        "/v1/reservations/chat-4711/move",
        {"from_location_id": "store-a", "to_location_id": "store-b"},
    )
    assert moved["at_risk"] is False
    assert moved["lines"] == [{"sku": sku, "location_id": "store-b", "qty": 1}]
    assert moved["hold_code"] == created["hold_code"]
    assert (await position(client, sku, "store-a"))["reserved"] == 0
    b = await position(client, sku, "store-b")
    assert (b["on_hand"], b["reserved"], b["available"]) == (2, 1, 1)
    r = await client.get("/v1/reservations", params={"at_risk": "true"})
    assert r.json()["reservations"] == []

    # The customer collects it at B.
    await post_ok(client, "/v1/reservations/chat-4711/confirm", {"pickup_within_seconds": 86400})
    r = await client.get("/v1/locations/store-b/pickups")
    assert [x["reservation_id"] for x in r.json()["pickups"]] == ["chat-4711"]
    assert (await client.get("/v1/locations/store-a/pickups")).json()["pickups"] == []
    await post_ok(client, "/v1/reservations/chat-4711/ready")
    done = await post_ok(client, "/v1/reservations/chat-4711/fulfill")
    assert done["state"] == "fulfilled"
    b = await position(client, sku, "store-b")
    assert (b["on_hand"], b["reserved"], b["available"]) == (1, 0, 1)
    a = await position(client, sku, "store-a")
    assert (a["on_hand"], a["reserved"]) == (0, 0)

    # The ledger has every step, and the reservation where it was collected.
    await record_outbox(services)
    r = await client.get(f"/v1/stock/store-b/{sku}/history")
    kinds = [(m["kind"], m["d_on_hand"], m["d_reserved"]) for m in r.json()["movements"]]
    assert kinds[:4] == [
        ("fulfilled", -1, -1),
        ("ready", 0, 0),
        ("confirmed", 0, 0),
        ("moved", 0, 1),
    ]
    r = await client.get(f"/v1/stock/store-a/{sku}/history")
    kinds = [(m["kind"], m["d_on_hand"], m["d_reserved"]) for m in r.json()["movements"]]
    assert kinds[:4] == [
        ("moved", 0, -1),
        ("oversell_risk", 0, 0),
        ("at_risk", 0, 0),
        ("adjusted", -1, 0),
    ]
    record = reservation_record(services.engine, services.settings.namespace, "chat-4711")
    assert record is not None
    row, transitions, code, _key = record
    assert (row.state, json.loads(row.lines)) == ("fulfilled", [[sku, "store-b", 1]])
    assert code is not None
    assert [t.state for t in transitions] == ["held", "moved", "confirmed", "ready", "fulfilled"]


async def test_listing_reservations_needs_a_filter(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/reservations")
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    assert (await client.get("/v1/reservations", params={"at_risk": "false"})).status_code == 422


async def test_a_customers_holds_across_stores(
    client: httpx.AsyncClient, seed: Seed, sku: str, make_key: KeyFactory, anon: httpx.AsyncClient
) -> None:
    await seed(sku, 3, "store-a")
    await seed(sku, 3, "store-b")
    await post_ok(client, "/v1/reservations", hold("c-a", sku, "store-a", customer_ref="crm-7"))
    await post_ok(client, "/v1/reservations", hold("c-b", sku, "store-b", customer_ref="crm-7"))
    await post_ok(client, "/v1/reservations", hold("c-x", sku, "store-b", customer_ref="crm-8"))
    await post_ok(client, "/v1/reservations/c-a/release")
    r = await client.get("/v1/reservations", params={"customer_ref": "crm-7"})
    assert [x["reservation_id"] for x in r.json()["reservations"]] == ["c-b"]
    staff_a = {"Authorization": f"Bearer {make_key('read', 'store-a')}"}
    r = await anon.get("/v1/reservations", params={"customer_ref": "crm-7"}, headers=staff_a)
    assert r.json()["reservations"] == []
    r = await client.get("/v1/reservations", params={"customer_ref": "a@b.de"})
    assert r.status_code == 422


async def test_move_to_a_store_without_stock_changes_nothing(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 2, "store-a")
    await seed(sku, 0, "store-b")
    await post_ok(client, "/v1/reservations", hold("m-1", sku, "store-a"))
    before = (await client.get("/v1/reservations/m-1")).json()
    move = {"from_location_id": "store-a", "to_location_id": "store-b"}
    r = await client.post("/v1/reservations/m-1/move", json=move)
    assert r.status_code == 409
    problem: dict[str, Any] = r.json()
    assert problem["code"] == "insufficient_stock"
    assert problem["short_lines"] == [
        {"sku": sku, "location_id": "store-b", "requested": 1, "available": 0}
    ]
    assert (await client.get("/v1/reservations/m-1")).json() == before
    assert (await position(client, sku, "store-a"))["reserved"] == 1
    assert (await position(client, sku, "store-b"))["reserved"] == 0


async def test_move_refuses_bad_requests(
    client: httpx.AsyncClient, seed: Seed, sku: str, make_key: KeyFactory, anon: httpx.AsyncClient
) -> None:
    await seed(sku, 2, "store-a")
    await seed(sku, 2, "store-b")
    await post_ok(client, "/v1/reservations", hold("m-2", sku, "store-a"))

    async def move(frm: str, to: str, c: httpx.AsyncClient = client, **kw: Any) -> httpx.Response:
        body = {"from_location_id": frm, "to_location_id": to}
        return await c.post("/v1/reservations/m-2/move", json=body, **kw)

    assert (await move("store-a", "store-a")).status_code == 422
    assert (await move("store-a", "store-nowhere")).json()["code"] == "not_found"
    assert (await move("store-b", "store-a")).status_code == 422  # no line at store-b
    key = {"Authorization": f"Bearer {make_key('reserve', 'store-a')}"}
    r = await move("store-a", "store-b", anon, headers=key)
    assert r.status_code == 403
    assert (await move("store-a", "store-b")).status_code == 200
    await post_ok(client, "/v1/reservations/m-2/release")
    r = await move("store-b", "store-a")
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")
    assert (
        await client.post(
            "/v1/reservations/none/move",
            json={"from_location_id": "store-a", "to_location_id": "store-b"},
        )
    ).status_code == 404
