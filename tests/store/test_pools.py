"""Channel pools in the store against a real server: configuration (upsert_pool.lua), reads
(pool_availability.lua) against a plain Python model, and what one read costs the server."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from stocksync.config import Settings
from stocksync.domain.errors import CrossDomain, DomainChange, NotFound, Unprocessable
from stocksync.domain.model import (
    Line,
    Location,
    Pool,
    PoolLocation,
    PoolLocationAvailability,
    offered_units,
)
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import outbox, wait_for_server_ms_after


def web_pool(*entries: tuple[str, int, int], pool_id: str = "web-de", **extra: Any) -> Pool:
    fields: dict[str, Any] = {
        "name": "Web DE",
        "channels": ("web", "app"),
        "strategy": "priority",
        **extra,
    }
    return Pool(pool_id, locations=tuple(PoolLocation(*e) for e in entries), **fields)


async def add(store: RedisStockStore, location_id: str, domain: str = "default") -> None:
    await store.upsert_location(Location(location_id, location_id, "store", domain=domain))


async def fcalls(client: Redis) -> int:
    """FCALLs the server has run so far (INFO commandstats)."""
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_fcall", {}).get("calls", 0))


# -- configuration -----------------------------------------------------------------------


async def test_a_pool_is_created_then_replaced_and_read_back(store: RedisStockStore) -> None:
    for loc in ("wh-1", "store-b", "store-a"):
        await add(store, loc)
    pool = web_pool(("store-b", 10, 2), ("wh-1", 0, 0), ("store-a", 10, 5))
    assert await store.upsert_pool(pool) is True
    assert [p.location_id for p in pool.locations] == ["wh-1", "store-a", "store-b"]

    stored = await store.client.hgetall(store.keys.pool("web-de"))  # type: ignore[misc]
    assert json.loads(stored["locs"]) == [["wh-1", 0, 0], ["store-a", 10, 5], ["store-b", 10, 2]]
    assert json.loads(stored["channels"]) == ["web", "app"]
    assert await store.client.smembers(store.keys.pools) == {"web-de"}  # type: ignore[misc]
    assert await store.get_pool("web-de") == pool

    smaller = web_pool(("store-a", 1, 0), strategy="most_available", name="Web DE 2")
    assert await store.upsert_pool(smaller) is False
    assert await store.get_pool("web-de") == smaller
    assert await store.list_pools() == [smaller]
    kinds = [(e["kind"], e.get("pool")) for e in await outbox(store)]
    assert kinds[-2:] == [("pool_upserted", "web-de"), ("pool_upserted", "web-de")]
    assert await store.get_pool("nope") is None


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"channels": ("web", "tiktok")}, "unknown channel"),
        ({"channels": ()}, "at least one channel"),
        ({"strategy": "random"}, "strategy"),
        ({"name": ""}, "name"),
        ({"locations": (PoolLocation("store-a", 1, 0), PoolLocation("store-a", 2, 0))}, "more"),
        ({"locations": (PoolLocation("store-a", 10_001, 0),)}, "priority"),
        ({"locations": (PoolLocation("store-a", 0, -1),)}, "buffer"),
        ({"locations": ()}, "1 to 200"),
        ({"pool_id": "Web DE"}, "pool id"),
    ],
)
async def test_an_invalid_pool_is_refused_and_nothing_is_written(
    store: RedisStockStore, change: dict[str, Any], says: str
) -> None:
    await add(store, "store-a")
    fields: dict[str, Any] = {
        "pool_id": "web-de",
        "name": "Web",
        "channels": ("web",),
        "strategy": "priority",
        "locations": (PoolLocation("store-a", 0, 0),),
        **change,
    }
    with pytest.raises(Unprocessable, match=says):
        await store.upsert_pool(Pool(**fields))
    assert await store.list_pools() == []
    assert await store.client.hlen(store.directory.pool_domains) == 0  # type: ignore[misc]


async def test_an_unknown_location_is_refused_and_nothing_is_written(
    store: RedisStockStore,
) -> None:
    await add(store, "store-a")
    with pytest.raises(NotFound, match="ghost"):
        await store.upsert_pool(web_pool(("store-a", 0, 0), ("ghost", 1, 0)))
    assert await store.list_pools() == []
    assert await store.client.hlen(store.directory.pool_domains) == 0  # type: ignore[misc]


async def test_pools_live_in_their_locations_domains(store: RedisStockStore) -> None:
    await add(store, "berlin-1", "de")
    await add(store, "berlin-2", "de")
    await add(store, "vienna-1", "at")
    await store.upsert_pool(web_pool(("berlin-1", 0, 0), ("berlin-2", 1, 1)))
    await store.upsert_pool(web_pool(("vienna-1", 0, 3), pool_id="web-at"))

    other = RedisStockStore(store.client, store.settings)  # a process that saw none of it
    assert {p.pool_id: p.domain for p in await other.list_pools()} == {
        "web-at": "at",
        "web-de": "de",
    }
    assert await other.domain_of_pool("web-at") == "at"
    assert await store.client.smembers(store.keys_of("de").pools) == {"web-de"}  # type: ignore[misc]
    assert await store.client.exists(store.keys.pools) == 0  # nothing in 'default'

    with pytest.raises(CrossDomain) as refused:
        await store.upsert_pool(web_pool(("berlin-1", 0, 0), ("vienna-1", 0, 0), pool_id="both"))
    assert set(refused.value.extra["domains"]) == {"de", "at"}
    assert await store.get_pool("both") is None
    assert await store.domain_of_pool("both") is None

    # A pool keeps its domain: replacing web-de with Austrian locations is refused.
    before = await store.get_pool("web-de")
    with pytest.raises(DomainChange):
        await store.upsert_pool(web_pool(("vienna-1", 0, 0)))
    assert await store.get_pool("web-de") == before


# -- reads -------------------------------------------------------------------------------


async def test_pool_rows_hold_buffers_back_and_skip_no_one(
    store: RedisStockStore, sku: str
) -> None:
    for loc in ("wh-1", "store-a", "store-b"):
        await add(store, loc)
    await store.set_count(sku, "wh-1", 20, safety_stock=2)
    await store.set_count(sku, "store-a", 3)
    # store-b: no position at all
    await store.reserve("r-1", "web", [Line(sku, "wh-1", 4)], 600)
    await store.upsert_pool(web_pool(("wh-1", 0, 5), ("store-a", 1, 5), ("store-b", 2, 0)))

    read = await store.pool_availability(sku, "web-de")

    assert read.locations == (
        PoolLocationAvailability("wh-1", 14, 5, 9),
        PoolLocationAvailability("store-a", 3, 5, 0),
        PoolLocationAvailability("store-b", 0, 0, 0),
    )
    assert read.available == 9
    assert await store.pool_availability_many("web-de", [sku]) == {sku: 9}
    with pytest.raises(NotFound):
        await store.pool_availability(sku, "nope")
    with pytest.raises(NotFound):
        await store.pool_availability_many("nope", [sku])


async def test_a_pool_read_reaps_a_due_hold_first(store: RedisStockStore, sku: str) -> None:
    await add(store, "store-a")
    await store.set_count(sku, "store-a", 5)
    await store.upsert_pool(web_pool(("store-a", 0, 1)))
    held = await store.reserve("short", "web", [Line(sku, "store-a", 4)], ttl_seconds=1)
    assert (await store.pool_availability(sku, "web-de")).available == 0
    assert held.reservation.expires_at_ms is not None
    await wait_for_server_ms_after(store, held.reservation.expires_at_ms)
    assert (await store.pool_availability(sku, "web-de")).available == 4
    assert (await store.get_reservation("short")).state == "expired"


async def test_a_location_read_in_bulk_is_its_availability(
    store: RedisStockStore, sku: str
) -> None:
    await add(store, "store-a")
    skus = [f"{sku}-{i}" for i in range(5)]
    for i, each in enumerate(skus[:4]):
        await store.set_count(each, "store-a", i * 3, safety_stock=2)
    got = await store.location_availability_many("store-a", skus)
    expected = {each: (await store.position(each, "store-a")).available for each in skus}
    assert got == expected == {skus[0]: 0, skus[1]: 1, skus[2]: 4, skus[3]: 7, skus[4]: 0}
    with pytest.raises(NotFound):
        await store.location_availability_many("ghost", skus)


async def test_batch_reads_equal_single_reads_and_each_is_one_fcall(
    store: RedisStockStore, sku: str
) -> None:
    locations = [f"store-{i}" for i in range(6)]
    for loc in locations:
        await add(store, loc)
    skus = [f"{sku}-{i:03d}" for i in range(200)]
    calls = [
        store.count_call(each, loc, (i * 7 + j * 3) % 11)
        for i, each in enumerate(skus)
        for j, loc in enumerate(locations)
        if (i + j) % 3
    ]
    await store.stock_changes(calls)
    await store.upsert_pool(web_pool(*((loc, j, j % 3) for j, loc in enumerate(locations))))
    await store.pool_availability_many("web-de", skus[:1])  # the pool's route is cached

    before = await fcalls(store.client)
    many = await store.pool_availability_many("web-de", skus)
    assert await fcalls(store.client) - before == 1
    before = await fcalls(store.client)
    one = await store.pool_availability(skus[5], "web-de")
    assert await fcalls(store.client) - before == 1
    before = await fcalls(store.client)
    at_one = await store.location_availability_many(locations[1], skus)
    assert await fcalls(store.client) - before == 1

    assert one.available == many[skus[5]]
    singles = {each: (await store.pool_availability(each, "web-de")).available for each in skus}
    assert many == singles
    assert list(many) == skus
    assert sum(many.values()) > 0
    positions = {each: (await store.position(each, locations[1])).available for each in skus}
    assert at_one == positions


async def test_a_read_beyond_one_calls_positions_continues_in_the_next(
    store: RedisStockStore, sku: str
) -> None:
    # 200 locations x 120 SKUs = 24,000 positions: the script reads at most 2,000 a call.
    locations = [f"s-{i:03d}" for i in range(200)]
    await asyncio.gather(*(add(store, loc) for loc in locations))
    skus = [f"{sku}-{i:03d}" for i in range(120)]
    calls = [store.count_call(each, locations[i], i + 1) for i, each in enumerate(skus)]
    calls.append(store.count_call(skus[0], locations[199], 10))
    await store.stock_changes(calls)
    await store.upsert_pool(web_pool(*((loc, 0, 1) for loc in locations)))
    await store.pool_availability_many("web-de", skus[:1])

    before = await fcalls(store.client)
    many = await store.pool_availability_many("web-de", skus)
    assert await fcalls(store.client) - before == 12  # 10 SKUs a call
    assert many == {each: i + (9 if i == 0 else 0) for i, each in enumerate(skus)}


# -- pool availability against a plain Python model --------------------------------------

position_strategy = st.tuples(
    st.integers(0, 30),  # on_hand
    st.integers(0, 5),  # safety
    st.integers(0, 30),  # units held
    st.integers(0, 30),  # a later count (may leave the held units short: negative available)
    st.integers(0, 12),  # the pool's buffer there
)


async def check_against_model(url: str, positions: list[tuple[int, int, int, int, int]]) -> None:
    client = Redis.from_url(url, decode_responses=True)
    try:
        store = RedisStockStore(client, Settings(namespace="pl" + uuid.uuid4().hex[:12]))
        sku = "SKU-MODEL"
        expected: dict[str, tuple[int, int]] = {}
        entries = []
        for i, (on_hand, safety, held, recount, buffer) in enumerate(positions):
            loc = f"loc-{i}"
            await add(store, loc)
            await store.set_count(sku, loc, on_hand, safety_stock=safety)
            reserved = min(held, max(0, on_hand - safety))
            if reserved:
                await store.reserve(f"h-{i}", "web", [Line(sku, loc, reserved)], 600)
                on_hand = recount
                await store.set_count(sku, loc, on_hand)
            available = on_hand - reserved - safety
            expected[loc] = (max(0, available), offered_units(on_hand, reserved, safety, buffer))
            entries.append((loc, len(positions) - i, buffer))
        await store.upsert_pool(web_pool(*entries))

        read = await store.pool_availability(sku, "web-de")

        assert {r.location_id: (r.available, r.offered) for r in read.locations} == expected
        assert read.available == sum(offered for _, offered in expected.values())
        assert await store.pool_availability_many("web-de", [sku]) == {sku: read.available}
        assert [r.location_id for r in read.locations] == [e[0] for e in reversed(entries)]
    finally:
        await client.aclose()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(positions=st.lists(position_strategy, min_size=1, max_size=6))
def test_pool_availability_is_the_sum_of_what_each_location_offers(
    redis_url: str, positions: list[tuple[int, int, int, int, int]]
) -> None:
    asyncio.run(check_against_model(redis_url, positions))
