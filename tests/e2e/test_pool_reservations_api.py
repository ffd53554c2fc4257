"""Pool reservations through HTTP: a line names a pool, the reply lists the chosen locations;
validation, unknown pools, the nearest strategy's point, and the pool's offer when short."""

from __future__ import annotations

import httpx

from stocksync.api.deps import Services
from tests.support.api import KeyFactory, Seed
from tests.support.pools import put_pool

BERLIN = {"lat": 52.52, "lon": 13.40}


def pool_hold(rid: str, lines: list[dict], **extra: object) -> dict:
    return {"reservation_id": rid, "channel": "web", "lines": lines, **extra}


async def _web_pool(seed: Seed, services: Services, sku: str, strategy: str = "priority") -> None:
    """wh (6 units, buffer 1, priority 1), store-b in Hamburg (4 units, buffer 2, priority 2)."""
    await seed(sku, 6, "wh", lat=None, lon=None, kind="warehouse")
    await seed(sku, 4, "store-b", lat=53.55, lon=9.99)
    await put_pool(services.store, "web-de", [("wh", 1, 1), ("store-b", 2, 2)], strategy)


async def test_pool_line_holds_at_the_chosen_location_and_replays(
    client: httpx.AsyncClient, seed: Seed, services: Services, sku: str
) -> None:
    await _web_pool(seed, services, sku)
    body = pool_hold("web-1", [{"sku": sku, "pool": "web-de", "qty": 7}], allow_split=True)
    r = await client.post("/v1/reservations", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["lines"] == [
        {"sku": sku, "location_id": "store-b", "qty": 2},
        {"sku": sku, "location_id": "wh", "qty": 5},
    ]
    assert created["pool_sources"] == [
        {"sku": sku, "pool": "web-de", "location_id": "wh", "qty": 5},
        {"sku": sku, "pool": "web-de", "location_id": "store-b", "qty": 2},
    ]
    again = await client.post("/v1/reservations", json=body)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == created
    assert (await client.get("/v1/reservations/web-1")).json() == created
    # every offered unit is held, the buffers are left: one unit at wh, two at store-b
    for loc, left in (("wh", 1), ("store-b", 2)):
        assert (await client.get(f"/v1/stock/{loc}/{sku}")).json()["available"] == left
    # then it behaves as any reservation
    r = await client.post("/v1/reservations/web-1/fulfill")
    assert r.json()["state"] == "fulfilled"
    assert (await client.get(f"/v1/stock/wh/{sku}")).json()["on_hand"] == 1


async def test_short_pool_line_reports_the_pools_offer(
    client: httpx.AsyncClient, seed: Seed, services: Services, sku: str
) -> None:
    await _web_pool(seed, services, sku)
    lines = [{"sku": sku, "pool": "web-de", "qty": 6}]  # 7 offered, but no one location has 6
    r = await client.post("/v1/reservations", json=pool_hold("web-2", lines))
    assert r.status_code == 409
    problem = r.json()
    assert problem["code"] == "insufficient_stock"
    assert problem["short_lines"] == [
        {"sku": sku, "pool": "web-de", "requested": 6, "available": 7}
    ]
    assert (await client.get(f"/v1/stock/wh/{sku}")).json()["reserved"] == 0


async def test_line_names_exactly_one_of_location_and_pool(
    client: httpx.AsyncClient, seed: Seed, services: Services, sku: str
) -> None:
    await _web_pool(seed, services, sku)
    both = {"sku": sku, "pool": "web-de", "location_id": "wh", "qty": 1}
    neither = {"sku": sku, "qty": 1}
    for i, line in enumerate((both, neither)):
        r = await client.post("/v1/reservations", json=pool_hold(f"bad-{i}", [line]))
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "validation_error"
    bad_point = pool_hold("bad-2", [{"sku": sku, "pool": "web-de", "qty": 1}], near={"lat": 99})
    assert (await client.post("/v1/reservations", json=bad_point)).status_code == 422
    bad_pool = pool_hold("bad-3", [{"sku": sku, "pool": "Web DE", "qty": 1}])
    assert (await client.post("/v1/reservations", json=bad_pool)).status_code == 422
    assert (await client.get(f"/v1/stock/wh/{sku}")).json()["reserved"] == 0


async def test_unknown_pool_is_404(client: httpx.AsyncClient, seed: Seed, sku: str) -> None:
    await seed(sku, 3)
    lines = [
        {"sku": sku, "pool": "no-such-pool", "qty": 1},
        {"sku": sku, "location_id": "store-a", "qty": 1},
    ]
    r = await client.post("/v1/reservations", json=pool_hold("web-3", lines))
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    assert (await client.get(f"/v1/stock/store-a/{sku}")).json()["reserved"] == 0


async def test_nearest_needs_near(
    client: httpx.AsyncClient, seed: Seed, services: Services, sku: str
) -> None:
    await _web_pool(seed, services, sku, strategy="nearest")
    lines = [{"sku": sku, "pool": "web-de", "qty": 1}]
    r = await client.post("/v1/reservations", json=pool_hold("web-4", lines))
    assert r.status_code == 422
    assert "near" in r.json()["detail"]
    r = await client.post("/v1/reservations", json=pool_hold("web-4", lines, near=BERLIN))
    assert r.status_code == 201, r.text
    # store-b (Hamburg) has coordinates, the warehouse none: the store comes first
    assert r.json()["lines"] == [{"sku": sku, "location_id": "store-b", "qty": 1}]


async def test_key_bound_to_locations_may_not_reserve_from_a_pool(
    app: object, seed: Seed, services: Services, make_key: KeyFactory, sku: str
) -> None:
    await _web_pool(seed, services, sku)
    key = make_key("read,reserve", "wh,store-b")
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://stocksync.test", headers=headers
    ) as bound:
        lines = [{"sku": sku, "pool": "web-de", "qty": 1}]
        r = await bound.post("/v1/reservations", json=pool_hold("web-5", lines))
    assert r.status_code == 403
    assert (await services.store.position(sku, "wh")).reserved == 0
