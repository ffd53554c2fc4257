"""Store pickup (BOPIS) and chat holds through HTTP: hold codes, the pick list, each step and
the illegal ones, and pickups that expire."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import httpx

from stocksync.config import Settings
from tests.support.api import KeyFactory, Seed, hold, position, post_ok

WAIT_SECONDS = 10.0


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


async def test_every_reservation_has_a_hold_code_to_find_it_by(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 2)
    created = await post_ok(client, "/v1/reservations", hold("chat-1", sku))
    code = created["hold_code"]
    assert len(code) == 8
    assert code[3] == "-"
    again = await post_ok(client, "/v1/reservations", hold("chat-1", sku))
    assert again["hold_code"] == code
    for typed in (code, code.lower(), code.replace("-", "")):
        r = await client.get(f"/v1/holds/{typed}")
        assert r.status_code == 200, typed
        assert r.json()["reservation_id"] == "chat-1"
    assert (await client.get("/v1/holds/222-2222")).status_code == 404
    assert (await client.get("/v1/holds/not-a-code")).status_code == 422
    confirmed = await post_ok(client, "/v1/reservations/chat-1/confirm", {})
    assert confirmed["hold_code"] == code


async def test_hold_ttl_follows_the_channel_policy(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    chat = await post_ok(client, "/v1/reservations", hold("ttl-chat", sku))
    assert seconds_between(chat["created_at"], chat["expires_at"]) == 172_800
    pos = await post_ok(client, "/v1/reservations", {**hold("ttl-pos", sku), "channel": "pos"})
    assert seconds_between(pos["created_at"], pos["expires_at"]) == 600
    # a channel outside the configured list is refused (it would escape every channel's caps);
    # a configured channel without a TTL policy gets the default TTL
    r = await client.post("/v1/reservations", json={**hold("ttl-x", sku), "channel": "kiosk"})
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")
    assert Settings(channels=["kiosk"]).hold_ttl("kiosk") == 900
    r = await client.post("/v1/reservations", json=hold("ttl-long", sku, ttl_seconds=15 * 86400))
    assert r.status_code == 422
    r = await client.post("/v1/reservations", json=hold("ttl-ok", sku, ttl_seconds=14 * 86400))
    assert r.status_code == 201


async def test_confirm_turns_a_hold_into_a_pickup_without_releasing_units(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 2)
    await post_ok(client, "/v1/reservations", hold("conv-1", sku, qty=2))
    seen: list[int] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            p = await position(client, sku)
            seen.append(p["reserved"])
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.05)
    confirmed = await post_ok(
        client, "/v1/reservations/conv-1/confirm", {"pickup_within_seconds": 86400}
    )
    await asyncio.sleep(0.05)
    done.set()
    await watcher
    assert confirmed["state"] == "confirmed"
    assert len(seen) > 2
    assert set(seen) == {2}
    assert (await position(client, sku))["available"] == 0
    # Nobody else could take the units meanwhile.
    r = await client.post("/v1/reservations", json=hold("thief", sku))
    assert r.json()["code"] == "insufficient_stock"


async def test_pick_list_of_a_store_by_deadline(
    client: httpx.AsyncClient, seed: Seed, sku: str, make_key: KeyFactory, anon: httpx.AsyncClient
) -> None:
    await seed(sku, 10, "store-a")
    await seed(sku, 10, "store-b")
    for rid in ("p-none", "p-late", "p-soon", "p-held"):
        await post_ok(client, "/v1/reservations", hold(rid, sku))
    await post_ok(client, "/v1/reservations", hold("p-elsewhere", sku, "store-b"))
    await post_ok(client, "/v1/reservations/p-elsewhere/confirm", {})
    await post_ok(client, "/v1/reservations/p-none/confirm", {})
    await post_ok(client, "/v1/reservations/p-late/confirm", {"pickup_within_seconds": 7200})
    await post_ok(client, "/v1/reservations/p-soon/confirm", {"pickup_within_seconds": 3600})
    await post_ok(client, "/v1/reservations/p-soon/ready")

    r = await client.get("/v1/locations/store-a/pickups")
    assert r.status_code == 200
    body = r.json()
    assert body["location_id"] == "store-a"
    assert [p["reservation_id"] for p in body["pickups"]] == ["p-soon", "p-late", "p-none"]
    assert body["pickups"][0]["hold_code"]
    r = await client.get("/v1/locations/store-a/pickups", params={"state": ["held", "ready"]})
    assert [p["reservation_id"] for p in r.json()["pickups"]] == ["p-soon", "p-held"]
    r = await client.get("/v1/locations/store-a/pickups", params={"state": "fulfilled"})
    assert r.status_code == 422

    await post_ok(client, "/v1/reservations/p-soon/fulfill")
    r = await client.get("/v1/locations/store-a/pickups")
    assert [p["reservation_id"] for p in r.json()["pickups"]] == ["p-late", "p-none"]

    staff_b = {"Authorization": f"Bearer {make_key('read', 'store-b')}"}
    assert (await anon.get("/v1/locations/store-a/pickups", headers=staff_b)).status_code == 403
    r = await anon.get("/v1/locations/store-b/pickups", headers=staff_b)
    assert [p["reservation_id"] for p in r.json()["pickups"]] == ["p-elsewhere"]


async def test_pickup_steps_refuse_the_illegal_ones(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 3)
    await post_ok(client, "/v1/reservations", hold("steps", sku))
    r = await client.post("/v1/reservations/steps/ready")
    assert r.status_code == 409
    assert (r.json()["code"], r.json()["state"]) == ("invalid_transition", "held")
    await post_ok(client, "/v1/reservations/steps/confirm", {"pickup_within_seconds": 3600})
    await post_ok(client, "/v1/reservations/steps/ready")
    first = await client.post("/v1/reservations/steps/fulfill")
    second = await client.post("/v1/reservations/steps/fulfill")
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.headers["Idempotent-Replayed"] == "true"
    p = await position(client, sku)
    assert (p["on_hand"], p["reserved"], p["available"]) == (2, 0, 2)
    assert (await client.post("/v1/reservations/steps/release")).status_code == 409


async def test_a_pickup_past_its_deadline_expires_and_units_return(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 1)
    await post_ok(client, "/v1/reservations", hold("no-show", sku))
    await post_ok(client, "/v1/reservations/no-show/confirm", {"pickup_within_seconds": 1})
    assert (await position(client, sku))["available"] == 0
    deadline = time.monotonic() + WAIT_SECONDS
    while (state := (await client.get("/v1/reservations/no-show")).json()["state"]) != "expired":
        assert state == "confirmed"
        assert time.monotonic() < deadline, "the pickup did not expire"
        await asyncio.sleep(0.05)
    p = await position(client, sku)
    assert (p["on_hand"], p["reserved"], p["available"]) == (1, 0, 1)
    assert (await client.get("/v1/locations/store-a/pickups")).json()["pickups"] == []
    r = await client.post("/v1/reservations/no-show/ready")
    assert r.json()["code"] == "invalid_transition"


async def test_staff_release_a_no_show(client: httpx.AsyncClient, seed: Seed, sku: str) -> None:
    await seed(sku, 1)
    await post_ok(client, "/v1/reservations", hold("gone", sku))
    await post_ok(client, "/v1/reservations/gone/confirm", {"pickup_within_seconds": 3600})
    await post_ok(client, "/v1/reservations/gone/ready")
    released = await post_ok(client, "/v1/reservations/gone/release")
    assert released["state"] == "released"
    assert (await position(client, sku))["available"] == 1
