"""Every strategy's choice, with and without split and over several lines, against the plain
Python statement of the rules (tests/support/sourcing_model.py), on random positions, buffers,
priorities and coordinates; run on a real server."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis.asyncio import BlockingConnectionPool, Redis

from stocksync.config import Settings
from stocksync.domain.errors import InsufficientStock
from stocksync.domain.model import (
    POOL_STRATEGIES,
    Line,
    Location,
    PoolLine,
    normalize_lines,
    normalize_pool_lines,
)
from stocksync.store.redis_store import RedisStockStore
from tests.support.pools import put_pool
from tests.support.sourcing_model import ModelPool, World, choose

LOCATIONS = 4
SKUS = 2
# A few points, so that two locations often share one (a tie in distance) and the search
# point is often one of them.
POINTS = [(52.52, 13.40), (53.55, 9.99), (48.14, 11.58), (50.11, 8.68)]

point = st.sampled_from(POINTS)
pool_member = st.tuples(st.integers(0, LOCATIONS), st.integers(1, 3), st.integers(0, 2))


@dataclass(frozen=True)
class Example:
    coords: list[tuple[float, float] | None]
    stock: list[list[tuple[int, int]]]  # [sku][loc] -> (on_hand, safety)
    pools: list[tuple[str, list[tuple[int, int, int]]]]  # strategy, (loc idx, prio, buffer)
    pool_lines: list[tuple[int, int, int]]  # sku idx, pool idx, qty
    loc_lines: list[tuple[int, int, int]]  # sku idx, loc idx, qty
    near: tuple[float, float]
    split: bool


examples = st.builds(
    Example,
    coords=st.lists(st.one_of(st.none(), point), min_size=LOCATIONS, max_size=LOCATIONS),
    stock=st.lists(
        st.lists(
            st.tuples(st.integers(0, 12), st.integers(0, 1)), min_size=LOCATIONS, max_size=LOCATIONS
        ),
        min_size=SKUS,
        max_size=SKUS,
    ),
    pools=st.lists(
        st.tuples(
            st.sampled_from(POOL_STRATEGIES),
            # index LOCATIONS is a location the domain does not have (never offers anything)
            st.lists(pool_member, min_size=1, max_size=5, unique_by=lambda m: m[0]),
        ),
        min_size=2,
        max_size=2,
    ),
    pool_lines=st.lists(
        st.tuples(st.integers(0, SKUS - 1), st.integers(0, 1), st.integers(1, 5)),
        min_size=1,
        max_size=3,
    ),
    loc_lines=st.lists(
        st.tuples(st.integers(0, SKUS - 1), st.integers(0, LOCATIONS - 1), st.integers(1, 3)),
        max_size=2,
    ),
    near=point,
    split=st.booleans(),
)


async def check(store: RedisStockStore, ex: Example) -> None:
    token = uuid.uuid4().hex[:8]
    locs = [f"l{token}-{i}" for i in range(LOCATIONS + 1)]
    skus = [f"S{token}-{i}" for i in range(SKUS)]
    pool_ids = [f"p{token}-{i}" for i in range(2)]
    world = World()
    for i, where in enumerate(ex.coords):
        lat, lon = where if where is not None else (None, None)
        await store.upsert_location(Location(locs[i], "L", "store", lat, lon, True, True))
        world.locations[locs[i]] = where
    for s, row in enumerate(ex.stock):
        for i, (on_hand, safety) in enumerate(row):
            await store.set_count(skus[s], locs[i], on_hand, safety_stock=safety)
            world.available[(skus[s], locs[i])] = on_hand - safety
    model_pools = {}
    for pool_id, (strategy, members) in zip(pool_ids, ex.pools, strict=True):
        config = [(locs[i], prio, buf) for i, prio, buf in members]
        await put_pool(store, pool_id, config, strategy=strategy)
        model_pools[pool_id] = ModelPool(strategy, config)
    pool_lines = normalize_pool_lines(
        PoolLine(skus[s], pool_ids[p], q) for s, p, q in ex.pool_lines
    )
    loc_lines = normalize_lines(Line(skus[s], locs[i], q) for s, i, q in ex.loc_lines)

    expected = choose(
        world,
        model_pools,
        [(ln.sku, ln.location_id, ln.qty) for ln in loc_lines],
        [(ln.sku, ln.pool, ln.qty) for ln in pool_lines],
        ex.near,
        ex.split,
    )
    try:
        result = await store.reserve(
            f"r{token}",
            "web",
            [*pool_lines, *loc_lines],
            ttl_seconds=600,
            near=ex.near,
            allow_split=ex.split,
        )
    except InsufficientStock as refused:
        got = [
            (s.sku, s.location_id, s.pool, s.requested, s.available) for s in refused.short_lines
        ]
        assert got == expected.short, ex
        event("refused: insufficient stock")
        for sku in skus:  # nothing was reserved
            for loc in locs[:LOCATIONS]:
                assert (await store.position(sku, loc)).reserved == 0
        return
    assert expected.short == [], (ex, result)
    reservation = result.reservation
    assert [(ln.sku, ln.location_id, ln.qty) for ln in reservation.lines] == expected.lines, ex
    assert [
        (s.sku, s.pool, s.location_id, s.qty) for s in reservation.pool_sources
    ] == expected.sources, ex
    for sku, loc, qty in expected.lines:
        assert (await store.position(sku, loc)).reserved == qty
    for strategy in {model_pools[ln.pool].strategy for ln in pool_lines}:
        event(f"held, {'split' if ex.split else 'whole'}: {strategy}")


def test_every_strategy_chooses_what_the_rules_say(redis_url: str) -> None:
    with asyncio.Runner() as runner:
        pool = BlockingConnectionPool.from_url(
            redis_url, max_connections=4, timeout=10, decode_responses=True
        )
        client = Redis(connection_pool=pool)
        store = RedisStockStore(client, Settings(namespace="t" + uuid.uuid4().hex[:12]))

        @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(ex=examples)
        def property_(ex: Example) -> None:
            runner.run(check(store, ex))

        try:
            property_()
        finally:
            runner.run(client.aclose())
            runner.run(pool.disconnect())
