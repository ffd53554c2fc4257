"""POST /v1/stock/{location_id}/{sku}/moves through HTTP: units between on_hand, damaged and
quality_control; every refusal a problem with a stable code that changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from stocksync.api.deps import Services
from tests.support.api import KeyFactory, Seed, as_key, hold, position, post_ok
from tests.support.keyspace import namespace_keys


def moves(sku: str, loc: str = "store-a") -> str:
    return f"/v1/stock/{loc}/{sku}/moves"


def body(qty: int = 1, src: str = "on_hand", to: str = "damaged", **extra: Any) -> dict[str, Any]:
    return {
        "from": src,
        "to": to,
        "qty": qty,
        "reason": "found-broken",
        "source": "store",
        "source_event_id": "mv-1",
        **extra,
    }


async def refused_unchanged(
    services: Services, client: httpx.AsyncClient, path: str, payload: Any
) -> httpx.Response:
    """POST ``payload``: refused, and every key of the namespace as it was before."""
    before = await namespace_keys(services.store.client, services.settings.namespace)
    r = await client.post(path, json=payload)
    assert r.status_code >= 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert await namespace_keys(services.store.client, services.settings.namespace) == before
    return r


async def test_a_move_answers_the_position_with_every_bucket(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    r = await client.post(moves(sku), json=body(2))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out | {"seq": 0} == {
        "sku": sku,
        "location_id": "store-a",
        "on_hand": 3,
        "reserved": 0,
        "safety_stock": 0,
        "available": 3,
        "damaged": 2,
        "quality_control": 0,
        "in_transit": 0,
        "incoming": 0,
        "arrivals": [],
        "from": "on_hand",
        "to": "damaged",
        "qty": 2,
        "applied": True,
        "replayed": False,
        "seq": 0,
        "at_risk_reservations": 0,
    }
    shown = await position(client, sku)
    assert (shown["on_hand"], shown["damaged"], shown["available"]) == (3, 2, 3)
    written_off = body(2, "damaged", "written_off", source_event_id="mv-2")
    assert (await post_ok(client, moves(sku), written_off))["damaged"] == 0


async def test_a_retry_replays_and_another_body_under_the_key_is_a_conflict(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    first = await post_ok(client, moves(sku), body(2))
    await post_ok(client, moves(sku), body(1, "damaged", "on_hand", source_event_id="mv-2"))
    again = await client.post(moves(sku), json=body(2))
    assert again.status_code == 200
    assert again.json() == first | {"replayed": True}
    r = await refused_unchanged(services, client, moves(sku), body(3))
    assert (r.status_code, r.json()["code"]) == (409, "idempotency_conflict")


async def test_a_move_from_a_bucket_without_the_units_is_409_and_changes_nothing(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 2)
    await post_ok(client, "/v1/reservations", hold("r1", sku, qty=2))
    for payload in (body(1, "damaged", "on_hand"), body(3), body(1, "quality_control")):
        r = await refused_unchanged(services, client, moves(sku), payload)
        assert (r.status_code, r.json()["code"]) == (409, "insufficient_units")
    problem = (await client.post(moves(sku), json=body(3))).json()
    assert {k: problem[k] for k in ("bucket", "sku", "location_id", "requested", "available")} == {
        "bucket": "on_hand",
        "sku": sku,
        "location_id": "store-a",
        "requested": 3,
        "available": 2,
    }


async def test_a_move_out_of_on_hand_under_holds_flags_them_and_counts_the_risk(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 3)
    await post_ok(client, "/v1/reservations", hold("r1", sku, qty=2))
    await post_ok(client, "/v1/reservations", hold("r2", sku, qty=1))
    before = (await client.get("/metrics")).text
    out = await post_ok(client, moves(sku), body(2))  # 1 on hand for 3 promised
    assert (out["on_hand"], out["reserved"], out["available"]) == (1, 3, 0)
    assert out["at_risk_reservations"] == 2
    assert (await client.get("/v1/reservations/r1")).json()["at_risk"]
    assert (await client.get("/v1/reservations/r2")).json()["at_risk"]
    after = (await client.get("/metrics")).text
    assert _sample(after, "stocksync_oversell_risk_total") == (
        _sample(before, "stocksync_oversell_risk_total") + 2
    )
    moved = 'stocksync_stock_changes_total{kind="move",outcome="applied"}'
    assert _sample(after, moved) == 1


def _sample(text: str, name: str) -> float:
    found = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(found[0].split()[-1]) if found else 0.0


async def test_invalid_moves_are_422_and_change_nothing(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    for payload in (
        body(1, "on_hand", "on_hand"),
        body(1, "in_transit", "on_hand"),  # only transfers move in_transit
        body(1, "on_hand", "in_transit"),
        body(1, "written_off", "on_hand"),
        body(0),
        body(1_000_001),
        body(1.5),
        body("1"),
        body(1, from_="on_hand"),  # the field is "from"
        body(1, note="x"),
        {k: v for k, v in body().items() if k != "source_event_id"},
    ):
        r = await refused_unchanged(services, client, moves(sku), payload)
        assert (r.status_code, r.json()["code"]) == (422, "validation_error"), payload
    r = await refused_unchanged(services, client, moves(sku, "store-nowhere"), body())
    assert (r.status_code, r.json()["code"]) == (404, "not_found")


async def test_a_move_needs_stock_write_at_that_location(
    app: FastAPI, services: Services, make_key: KeyFactory, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    await seed(sku, 5, "store-b")
    for scopes, locations in (("read,reserve", None), ("stock:write", "store-b")):
        async with as_key(app, make_key(scopes, locations)) as other:
            r = await refused_unchanged(services, other, moves(sku), body())
            assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    async with as_key(app, make_key("stock:write", "store-a")) as staff:
        assert (await post_ok(staff, moves(sku), body()))["damaged"] == 1
