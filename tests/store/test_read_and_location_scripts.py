"""read_positions.lua, get_reservation.lua and upsert_location.lua against a real Redis."""

from __future__ import annotations

import pytest

from stocksync.domain.errors import NotFound, Unprocessable
from stocksync.domain.model import Line, Location, State
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import Stocked, outbox


async def test_upsert_location_creates_then_updates_with_geo(store: RedisStockStore) -> None:
    mitte = Location("store-mitte", "Mitte", "store", 52.5219, 13.4132, True, True)
    assert await store.upsert_location(mitte) is True
    moved = Location("store-mitte", "Mitte (new)", "store", 52.52, 13.41, False, True)
    assert await store.upsert_location(moved) is False
    assert await store.get_location("store-mitte") == moved
    assert await store.list_locations() == [moved]
    ((lon, lat),) = await store.client.geopos(f"{store.keys.prefix}geo", "store-mitte")
    assert (round(lat, 3), round(lon, 3)) == (52.52, 13.41)
    events = [f for _, f in await store.client.xrange(store.keys.outbox)]
    assert [e["kind"] for e in events] == ["location_upserted", "location_upserted"]


async def test_upsert_location_without_coordinates_leaves_geo_index(
    store: RedisStockStore,
) -> None:
    await store.upsert_location(Location("wh-1", "Warehouse", "warehouse", 52.0, 13.0))
    await store.upsert_location(Location("wh-1", "Warehouse", "warehouse"))
    assert await store.client.geopos(f"{store.keys.prefix}geo", "wh-1") == [None]
    assert (await store.get_location("wh-1")) == Location("wh-1", "Warehouse", "warehouse")


async def test_read_positions_lists_every_location_of_a_sku(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3, "store-a")
    await stocked(sku, 4, "store-b", safety=1)
    rows = {loc.location_id: pos for pos, loc in await store.positions(sku)}
    assert set(rows) == {"store-a", "store-b"}
    assert (rows["store-b"].on_hand, rows["store-b"].available) == (4, 3)
    assert await store.positions("NO-SUCH-SKU") == []


async def test_read_positions_of_unknown_location_is_not_found(
    store: RedisStockStore, sku: str
) -> None:
    with pytest.raises(NotFound):
        await store.position(sku, "nowhere")


async def test_get_reservation_returns_lines_history_and_customer_ref(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await store.reserve("r1", "chat", [Line(sku, "store-a", 2)], 600, customer_ref="crm-1")
    await store.confirm("r1")
    got = await store.get_reservation("r1")
    assert got.state is State.CONFIRMED
    assert got.lines == [Line(sku, "store-a", 2)]
    assert got.customer_ref == "crm-1"
    assert [state for state, _ in got.history] == ["held", "confirmed"]
    assert [e["kind"] for e in await outbox(store, sku)][-1] == "confirmed"
    with pytest.raises(NotFound):
        await store.get_reservation("r-unknown")


@pytest.mark.parametrize(("lat", "lon"), [(89.0, 13.4), (-85.06, 13.4), (52.5, 180.5)])
async def test_upsert_location_beyond_geo_range_changes_nothing(
    store: RedisStockStore, lat: float, lon: float
) -> None:
    kept = Location("store-north", "North", "store", 52.52, 13.41, True, True)
    await store.upsert_location(kept)
    before = await store.client.xlen(store.keys.outbox)
    with pytest.raises(Unprocessable, match="GEO"):
        await store.upsert_location(Location("store-north", "Moved", "store", lat, lon))
    with pytest.raises(Unprocessable):
        await store.upsert_location(Location("store-polar", "Polar", "store", lat, lon))
    assert await store.get_location("store-north") == kept
    assert await store.list_locations() == [kept]
    assert not await store.client.exists(store.keys.location("store-polar"))
    assert await store.client.geopos(store.keys.geo, "store-polar") == [None]
    assert await store.client.xlen(store.keys.outbox) == before


async def test_upsert_location_at_the_edge_of_geo_range_is_indexed(store: RedisStockStore) -> None:
    edge = Location("store-edge", "Edge", "store", 85.05112878, -180.0)
    assert await store.upsert_location(edge) is True
    assert await store.client.geopos(store.keys.geo, "store-edge") != [None]
