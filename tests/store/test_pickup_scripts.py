"""Hold codes, holder caps and the active-reservation indexes (reserve.lua, find_reservations.lua,
nearby.lua) against a real Redis."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from stocksync.config import Settings
from stocksync.domain.codes import ALPHABET
from stocksync.domain.errors import HoldLimitReached
from stocksync.domain.model import Line, Location, State
from stocksync.store import reservations
from stocksync.store.keys import ordered_member
from stocksync.store.pickups import PickupOps
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import Stocked, outbox, wait_for_server_ms_after, wait_for_state


async def test_reserve_stores_a_hold_code_and_indexes_it(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    held = (await store.reserve("r1", "chat", [Line(sku, "store-a", 1)], 60)).reservation
    code = held.hold_code
    assert code is not None
    assert len(code) == 7
    assert set(code) <= set(ALPHABET)
    assert await store.client.get(store.keys.hold_code(code)) == "r1"
    assert (await store.get_reservation("r1")).hold_code == code
    assert await PickupOps(store).reservation_id_by_code(f"{code[:3]}-{code[3:]}".lower()) == "r1"
    assert [e["code"] for e in await outbox(store, sku) if e["kind"] == "held"] == [code]


async def test_reserve_replay_returns_the_original_code(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    first = await store.reserve("r1", "web", [Line(sku, "store-a", 1)], 60)
    again = await store.reserve("r1", "web", [Line(sku, "store-a", 1)], 60)
    assert not again.created
    assert again.reservation.hold_code == first.reservation.hold_code


async def test_reserve_retries_with_a_new_code_when_taken(
    store: RedisStockStore, stocked: Stocked, sku: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stocked(sku, 5)
    codes = iter(["AAAAAAA", "AAAAAAA", "BBBBBBB"])
    monkeypatch.setattr(reservations, "new_hold_code", lambda: next(codes))
    assert (await store.reserve("r1", "web", [Line(sku, "store-a", 1)], 60)).reservation.hold_code
    second = await store.reserve("r2", "web", [Line(sku, "store-a", 1)], 60)
    assert second.reservation.hold_code == "BBBBBBB"
    assert (await store.position(sku, "store-a")).reserved == 2


@pytest.fixture
async def capped(redis_client: Redis, namespace: str) -> RedisStockStore:
    settings = Settings(
        namespace=namespace,
        max_active_holds_per_key={"web": 3, "chat": 3},
        max_active_holds_per_customer=2,
    )
    return RedisStockStore(redis_client, settings)


async def test_reserve_caps_active_holds_per_customer(
    capped: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 10)
    for i in range(2):
        await capped.reserve(f"c{i}", "chat", [Line(sku, "store-a", 1)], 60, "crm-1")
    with pytest.raises(HoldLimitReached) as err:
        await capped.reserve("c2", "chat", [Line(sku, "store-a", 1)], 60, "crm-1")
    assert err.value.extra == {"limit": 2, "scope": "customer"}
    assert (await capped.position(sku, "store-a")).reserved == 2
    assert not await capped.client.exists(capped.keys.reservation("c2"))
    await capped.reserve("other", "chat", [Line(sku, "store-a", 1)], 60, "crm-2")
    # A hold that ends frees its place.
    await capped.release("c0")
    await capped.reserve("c2", "chat", [Line(sku, "store-a", 1)], 60, "crm-1")
    indexed = await capped.client.zrange(capped.keys.customer_reservations("crm-1"), 0, -1)
    assert [m.split(":", 1)[1] for m in indexed] == ["c1", "c2"]  # by deadline


async def test_reserve_caps_active_holds_per_key_and_reaps_due_ones(
    capped: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 10)
    await capped.reserve("k0", "web", [Line(sku, "store-a", 1)], 1, key_id="key1")
    for i in (1, 2):
        await capped.reserve(f"k{i}", "web", [Line(sku, "store-a", 1)], 60, key_id="key1")
    await wait_for_state(capped, "k0", State.EXPIRED)
    await capped.reserve("k3", "web", [Line(sku, "store-a", 1)], 60, key_id="key1")
    with pytest.raises(HoldLimitReached) as err:
        await capped.reserve("k4", "web", [Line(sku, "store-a", 1)], 60, key_id="key1")
    assert err.value.extra == {"limit": 3, "scope": "key"}
    await capped.reserve("k4", "web", [Line(sku, "store-a", 1)], 60, key_id="key2")
    await capped.reserve("k5", "web", [Line(sku, "store-a", 1)], 60)  # no key: no cap
    assert (await capped.position(sku, "store-a")).reserved == 5


async def test_reserve_cap_counts_a_hold_that_expired_unreaped_as_ended(
    capped: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 10)
    await capped.reserve("c0", "chat", [Line(sku, "store-a", 1)], 1, "crm-9")
    await capped.reserve("c1", "chat", [Line(sku, "store-a", 1)], 60, "crm-9")
    await wait_for_state(capped, "c0", State.EXPIRED)
    await capped.reserve("c2", "chat", [Line(sku, "store-a", 1)], 60, "crm-9")


async def test_finish_drops_a_reservation_from_every_index(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 2)
    held = (
        await store.reserve("r1", "chat", [Line(sku, "store-a", 2)], 60, "crm-1", key_id="k1")
    ).reservation
    await store.adjust(sku, "store-a", -1, reason="sale", source="pos", source_event_id="s1")
    keys, member = store.keys, ordered_member("r1", held.created_at_ms)
    located = (keys.location_reservations("store-a", "held"), keys.location_at_risk("store-a"))
    for index in (keys.at_risk, *located, keys.key_reservations("k1")):
        assert await store.client.zscore(index, member) == held.expires_at_ms
    assert f"{sku}:{member}" in await store.client.zrange(keys.hold_ages("store-a"), 0, -1)
    await store.fulfill("r1")
    for index in (keys.at_risk, *located):
        assert await store.client.zscore(index, member) is None
    assert f"{sku}:{member}" not in await store.client.zrange(keys.hold_ages("store-a"), 0, -1)
    assert not await store.client.exists(keys.key_reservations("k1"))
    assert not await store.client.exists(keys.customer_reservations("crm-1"))
    assert held.hold_code is not None
    assert await store.client.ttl(keys.hold_code(held.hold_code)) > 0  # findable until pruned


async def test_find_orders_pickups_by_deadline_then_age(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 10)
    for rid in ("p-none", "p-late", "p-soon", "p-held"):
        await store.reserve(rid, "web", [Line(sku, "store-a", 1)], 600)
    await store.confirm("p-none")
    await store.confirm("p-late", pickup_seconds=7200)
    await store.confirm("p-soon", pickup_seconds=3600)
    await store.ready("p-soon")
    ops = PickupOps(store)
    found = await ops.find("loc", "store-a", states=[State.CONFIRMED, State.READY])
    assert [r.reservation_id for r in found] == ["p-soon", "p-late", "p-none"]
    everything = await ops.find("loc", "store-a")
    assert [r.reservation_id for r in everything] == ["p-held", "p-soon", "p-late", "p-none"]
    assert [r.reservation_id for r in await ops.find("loc", "store-a", limit=1)] == ["p-held"]


async def test_find_expires_due_reservations_and_drops_them(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3)
    await store.reserve("r1", "web", [Line(sku, "store-a", 1)], 60, "crm-1")
    await store.confirm("r1", pickup_seconds=1)
    ops = PickupOps(store)
    assert [r.reservation_id for r in await ops.find("cust", "crm-1")] == ["r1"]
    await wait_for_state(store, "r1", State.EXPIRED)
    assert await ops.find("cust", "crm-1") == []
    assert await ops.find("loc", "store-a") == []


async def test_nearby_uses_the_geo_index_nearest_first(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    async def at(loc: str, lat: float, lon: float, on_hand: int, pickup: bool = True) -> None:
        await store.upsert_location(Location(loc, loc, "store", lat, lon, pickup, True))
        await store.set_count(sku, loc, on_hand, safety_stock=1)

    await at("store-mitte", 52.5219, 13.4132, 5)
    await at("store-potsdam", 52.3989, 13.0657, 3)
    await at("store-hamburg", 53.55, 9.99, 9)
    await at("wh-east", 52.50, 13.60, 4, pickup=False)
    await store.upsert_location(Location("store-empty", "e", "store", 52.40, 13.07, True, True))
    held = await store.reserve("r1", "web", [Line(sku, "store-potsdam", 1)], 1)
    assert held.reservation.expires_at_ms is not None
    await wait_for_server_ms_after(store, held.reservation.expires_at_ms)
    ops = PickupOps(store)
    rows = await ops.nearby(sku, 52.40, 13.07, 50)
    assert [r.location.location_id for r in rows] == ["store-potsdam", "store-mitte", "wh-east"]
    assert rows[0].distance_km < 1
    assert rows[0].position.available == 2  # safety stock held back; the due hold reaped
    assert rows[0].position.reserved == 0
    pickup = await ops.nearby(sku, 52.40, 13.07, 50, pickup_only=True)
    assert [r.location.location_id for r in pickup] == ["store-potsdam", "store-mitte"]
