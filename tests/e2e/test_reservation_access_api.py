"""Who may see and act on a reservation: its key, admin keys, and the staff of all its stores.

Any other key is told it does not exist (404 as for a missing one), on every route.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from stocksync.api.deps import Services
from stocksync.api.reservation_access import access_spec, may_access
from stocksync.auth.principal import Principal
from stocksync.store.outbox import decode_event
from stocksync.store.scripts import library_source
from tests.support.api import KeyFactory, Seed, as_key, hold, position, post_ok

MOVE = {"from_location_id": "store-a", "to_location_id": "store-b"}


async def attempts(c: httpx.AsyncClient, rid: str, code: str) -> dict[str, httpx.Response]:
    """Every route that shows or changes one reservation, tried by ``c``."""
    return {
        "get": await c.get(f"/v1/reservations/{rid}"),
        "hold code": await c.get(f"/v1/holds/{code}"),
        "extend": await c.post(f"/v1/reservations/{rid}/extend", json={"ttl_seconds": 60}),
        "confirm": await c.post(f"/v1/reservations/{rid}/confirm", json={}),
        "confirm pickup": await c.post(
            f"/v1/reservations/{rid}/confirm", json={"pickup_within_seconds": 10**6}
        ),
        "ready": await c.post(f"/v1/reservations/{rid}/ready"),
        "move": await c.post(f"/v1/reservations/{rid}/move", json=MOVE),
        "fulfill": await c.post(f"/v1/reservations/{rid}/fulfill"),
        "release": await c.post(f"/v1/reservations/{rid}/release"),
    }


async def listed(c: httpx.AsyncClient, **params: Any) -> list[str]:
    r = await c.get("/v1/reservations", params=params)
    assert r.status_code == 200, r.text
    return [x["reservation_id"] for x in r.json()["reservations"]]


async def test_another_keys_reservation_is_404_on_every_route_and_nothing_changes(
    app: FastAPI, client: httpx.AsyncClient, make_key: KeyFactory, seed: Seed, sku: str
) -> None:
    await seed(sku, 5, "store-a")
    await seed(sku, 5, "store-b")
    async with as_key(app, make_key("read,reserve")) as owner:
        made = await post_ok(owner, "/v1/reservations", hold("chat-4711", sku, customer_ref="c-1"))
        before = (await owner.get("/v1/reservations/chat-4711")).json()
        for scopes in ("read,reserve", "reserve"):
            async with as_key(app, make_key(scopes)) as other:
                for route, r in (await attempts(other, "chat-4711", made["hold_code"])).items():
                    # without the read scope a read is 403 before anything is looked up
                    reads = route in ("get", "hold code") and "read" not in scopes
                    assert (route, r.status_code) == (route, 403 if reads else 404)
                    assert "c-1" not in r.text
                if "read" in scopes:
                    assert await listed(other, customer_ref="c-1") == []
                # the same id and body from another key is a conflict, not a replay of the hold
                again = hold("chat-4711", sku, customer_ref="c-1")
                r = await other.post("/v1/reservations", json=again)
                assert (r.status_code, r.json()["code"]) == (409, "idempotency_conflict")
        assert (await owner.get("/v1/reservations/chat-4711")).json() == before
        assert await listed(owner, customer_ref="c-1") == ["chat-4711"]
    assert (await position(client, sku, "store-a"))["reserved"] == 1
    assert (await position(client, sku, "store-b"))["reserved"] == 0


async def test_owner_admin_and_staff_of_every_store_of_it_may_act(
    app: FastAPI, client: httpx.AsyncClient, make_key: KeyFactory, seed: Seed, sku: str
) -> None:
    await seed(sku, 5, "store-a")
    await seed(sku, 5, "store-b")
    both = {
        "reservation_id": "two-stores",
        "channel": "web",
        "lines": [
            {"sku": sku, "location_id": "store-a", "qty": 1},
            {"sku": sku, "location_id": "store-b", "qty": 1},
        ],
    }
    async with (
        as_key(app, make_key("read,reserve")) as owner,
        as_key(app, make_key("read,reserve", "store-a")) as staff_a,
        as_key(app, make_key("read,reserve", "store-b")) as staff_b,
        as_key(app, make_key("read,reserve", "store-a,store-b")) as regional,
    ):
        await post_ok(owner, "/v1/reservations", hold("one-store", sku, customer_ref="c-2"))
        await post_ok(owner, "/v1/reservations", {**both, "customer_ref": "c-2"})
        # store-a staff: its store's reservation, not one that also holds at store-b
        await post_ok(staff_a, "/v1/reservations/one-store/confirm", {})
        assert (await staff_a.get("/v1/reservations/two-stores")).status_code == 404
        assert await listed(staff_a, customer_ref="c-2") == ["one-store"]
        pickups = (await staff_a.get("/v1/locations/store-a/pickups")).json()["pickups"]
        assert [p["reservation_id"] for p in pickups] == ["one-store"]
        assert (await staff_b.get("/v1/reservations/one-store")).status_code == 404
        assert (await staff_b.get("/v1/locations/store-b/pickups")).json()["pickups"] == []
        # staff of both stores, the owner and admin keys see both
        assert (await regional.get("/v1/reservations/two-stores")).status_code == 200
        assert sorted(await listed(owner, customer_ref="c-2")) == ["one-store", "two-stores"]
        assert sorted(await listed(client, customer_ref="c-2")) == ["one-store", "two-stores"]
        await post_ok(regional, "/v1/reservations/two-stores/release")
        await post_ok(client, "/v1/reservations/one-store/ready")
        await post_ok(owner, "/v1/reservations/one-store/fulfill")


async def test_a_reservation_read_from_the_ledger_follows_the_same_rule(
    app: FastAPI, make_key: KeyFactory, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 3)
    async with (
        as_key(app, make_key("read,reserve")) as owner,
        as_key(app, make_key("read,reserve")) as other,
        as_key(app, make_key("read", "store-a")) as staff,
    ):
        await post_ok(owner, "/v1/reservations", hold("old-2", sku))
        await post_ok(owner, "/v1/reservations/old-2/release")
        raw = await services.store.client.xrange(services.store.keys.outbox)
        services.ledger.record([decode_event(services.settings.namespace, i, f) for i, f in raw])
        await services.store.client.delete(services.store.keys.reservation("old-2"))  # retention
        assert (await owner.get("/v1/reservations/old-2")).json()["state"] == "released"
        assert (await staff.get("/v1/reservations/old-2")).status_code == 200
        r = await other.get("/v1/reservations/old-2")
        assert (r.status_code, r.json()["code"]) == (404, "not_found")


ACCESS_CASES = [
    # scopes, bound locations, owner, reservation's locations
    ("admin", None, "other", {"store-a"}),
    ("read,reserve", None, "me", {"store-a"}),
    ("read,reserve", None, "other", {"store-a"}),
    ("read,reserve", None, None, {"store-a"}),
    ("reserve", {"store-a"}, "other", {"store-a"}),
    ("reserve", {"store-a"}, None, {"store-a", "store-b"}),
    ("reserve", {"store-a", "store-b"}, "other", {"store-a", "store-b"}),
    ("reserve", {"store-b"}, "me", {"store-a"}),
]


@pytest.mark.parametrize(("scopes", "bound", "owner", "locations"), ACCESS_CASES)
async def test_scripts_apply_the_same_access_rule_as_python(
    redis_client: Redis,
    scopes: str,
    bound: set[str] | None,
    owner: str | None,
    locations: set[str],
) -> None:
    principal = Principal(
        "me", "n", frozenset(scopes.split(",")), None if bound is None else frozenset(bound)
    )
    lines = "{" + ",".join(f"{{'S','{loc}',1}}" for loc in sorted(locations)) + "}"
    probe = library_source() + f"\nreturn may_access(ARGV[3], ARGV[4], {lines}) and 1 or 0"
    reply = await redis_client.eval(  # type: ignore[no-untyped-call]
        probe, 1, "ss:{probe}:", 60, 0, access_spec(principal), owner or ""
    )
    assert bool(reply) == may_access(principal, owner, locations)
