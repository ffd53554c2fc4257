"""The reservation lifecycle through HTTP, with problem+json errors."""

from __future__ import annotations

import httpx

from tests.support.api import Seed


def reservation(rid: str, sku: str, qty: int = 1, loc: str = "store-a", **extra: object) -> dict:
    return {
        "reservation_id": rid,
        "channel": "web",
        "lines": [{"sku": sku, "location_id": loc, "qty": qty}],
        **extra,
    }


async def stock(client: httpx.AsyncClient, sku: str, loc: str = "store-a") -> dict:
    r = await client.get(f"/v1/stock/{loc}/{sku}")
    assert r.status_code == 200, r.text
    body: dict = r.json()
    return body


async def test_reserve_confirm_ready_fulfill_moves_stock(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 3)
    r = await client.post("/v1/reservations", json=reservation("bopis-1", sku, 2, ttl_seconds=60))
    assert r.status_code == 201
    assert r.json()["state"] == "held"
    assert (await stock(client, sku))["available"] == 1
    r = await client.post("/v1/reservations/bopis-1/confirm", json={"pickup_within_seconds": 3600})
    assert r.json()["state"] == "confirmed"
    assert r.json()["expires_at"] is not None
    assert (await client.post("/v1/reservations/bopis-1/ready")).json()["state"] == "ready"
    r = await client.post("/v1/reservations/bopis-1/fulfill", json={})
    assert r.json()["state"] == "fulfilled"
    assert [h["state"] for h in r.json()["history"]] == ["held", "confirmed", "ready", "fulfilled"]
    position = await stock(client, sku)
    assert (position["on_hand"], position["reserved"], position["available"]) == (1, 0, 1)


async def test_reserve_insufficient_stock_lists_short_lines(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 1)
    r = await client.post("/v1/reservations", json=reservation("r-short", sku, 2))
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "insufficient_stock"
    assert problem["short_lines"] == [
        {"sku": sku, "location_id": "store-a", "requested": 2, "available": 1}
    ]
    assert (await stock(client, sku))["reserved"] == 0


async def test_reserve_retry_returns_same_and_conflict_is_409(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    first = await client.post("/v1/reservations", json=reservation("r-idem", sku, 2))
    again = await client.post("/v1/reservations", json=reservation("r-idem", sku, 2))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = await client.post("/v1/reservations", json=reservation("r-idem", sku, 3))
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_conflict"
    assert (await stock(client, sku))["reserved"] == 2


async def test_transition_from_terminal_state_is_invalid(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    await client.post("/v1/reservations", json=reservation("r-term", sku))
    assert (await client.post("/v1/reservations/r-term/release")).status_code == 200
    again = await client.post("/v1/reservations/r-term/release")
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    r = await client.post("/v1/reservations/r-term/fulfill")
    assert r.status_code == 409
    assert r.json()["code"] == "invalid_transition"
    assert r.json()["state"] == "released"
    assert (await stock(client, sku))["on_hand"] == 5


async def test_ready_before_confirm_is_invalid(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    await client.post("/v1/reservations", json=reservation("r-early", sku))
    r = await client.post("/v1/reservations/r-early/ready")
    assert r.status_code == 409
    assert r.json()["code"] == "invalid_transition"


async def test_unknown_reservation_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/reservations/nope")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    assert (await client.post("/v1/reservations/nope/confirm")).json()["code"] == "not_found"


async def test_extend_moves_the_deadline(client: httpx.AsyncClient, seed: Seed, sku: str) -> None:
    await seed(sku, 5)
    held = await client.post("/v1/reservations", json=reservation("r-ext", sku, ttl_seconds=60))
    r = await client.post("/v1/reservations/r-ext/extend", json={"ttl_seconds": 7200})
    assert r.status_code == 200
    assert r.json()["expires_at"] > held.json()["expires_at"]


async def test_ttl_above_configured_maximum_is_refused(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    r = await client.post(
        "/v1/reservations", json=reservation("r-long", sku, ttl_seconds=60 * 24 * 3600)
    )
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    assert (await stock(client, sku))["reserved"] == 0


async def test_multi_line_reservation_across_stores(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 2, "store-a")
    await seed(sku, 2, "store-b")
    body = {
        "reservation_id": "r-multi",
        "channel": "app",
        "lines": [
            {"sku": sku, "location_id": "store-a", "qty": 2},
            {"sku": sku, "location_id": "store-b", "qty": 1},
        ],
    }
    assert (await client.post("/v1/reservations", json=body)).status_code == 201
    assert (await stock(client, sku, "store-a"))["available"] == 0
    assert (await stock(client, sku, "store-b"))["available"] == 1
    got = (await client.get("/v1/reservations/r-multi")).json()
    assert len(got["lines"]) == 2
