"""A Shopify location mapped to a channel pool shows the pool's offered units (Σ max(0,
available - buffer) over its locations), against the Shopify stub on loopback and the real
engine."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from connectors.framework.metrics import connector_metrics
from connectors.shopify.connector import ShopifyConnector, create
from connectors.shopify.pool_reads import UnknownPool, get_pool, pool_available_many
from connectors.shopify.push import AvailabilityPush
from stocksync.domain.model import Line, Location
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore
from tests.support.shopify_connector import (
    ITEM,
    OTHER_ITEM,
    SHOP_LOC,
    drain,
    put_pool,
    table,
    write_mapping,
)
from tests.support.shopify_stub import ShopifyStub
from tests.support.stub_server import StubServer

WEB_LOC = "gid://shopify/Location/655441499"  # the online store's Shopify location
POOL = "web-berlin"
# (location_id, priority, buffer): the buffers are what the stores keep back from the web
POOL_LOCATIONS = [("warehouse-a", 0, 2), ("store-a", 1, 3), ("store-b", 2, 4)]


@pytest.fixture
def shop() -> ShopifyStub:
    return ShopifyStub(levels={(ITEM, WEB_LOC): 0, (OTHER_ITEM, WEB_LOC): 0, (ITEM, SHOP_LOC): 0})


@pytest.fixture
async def connector(
    shop: ShopifyStub, stub_server: StubServer, sku: str, tmp_path: Path
) -> AsyncIterator[ShopifyConnector]:
    mapping = write_mapping(
        tmp_path / "map.toml",
        {ITEM: sku, OTHER_ITEM: sku + "-other"},
        locations={SHOP_LOC: "store-a"},
        pools={WEB_LOC: POOL},
    )
    async with stub_server(shop.app()) as base_url:
        yield create(table(base_url, mapping, full_sync_interval_seconds=0))


@pytest.fixture
async def stocked_pool(store: RedisStockStore, stocked: Callable[..., Any], sku: str) -> None:
    """warehouse-a 10 (buffer 2: offers 8), store-a 6 with 1 safety (buffer 3: offers 2),
    store-b 3 (buffer 4: offers 0, not -1); store-x is in no pool."""
    await stocked(sku, 10, "warehouse-a")
    await stocked(sku, 6, "store-a", safety=1)
    await stocked(sku, 3, "store-b")
    await stocked(sku, 50, "store-x")
    await put_pool(store, POOL, POOL_LOCATIONS)


@pytest.fixture
async def pusher(
    connector: ShopifyConnector, ctx: EngineContext, stocked_pool: None
) -> AsyncIterator[AvailabilityPush]:
    async with connector.client() as client:
        push = connector.pusher(ctx, client)
        await push.attach()
        yield push
        await push.detach()


async def sale(store: RedisStockStore, sku: str, location_id: str, qty: int, tag: str) -> None:
    await store.adjust(sku, location_id, -qty, reason="sale", source="test", source_event_id=tag)


async def test_pool_level_is_the_sum_of_offered_units_with_buffers_withheld(
    pusher: AvailabilityPush, shop: ShopifyStub, store: RedisStockStore, sku: str
) -> None:
    await pusher.sync_all()
    assert shop.levels[(ITEM, WEB_LOC)] == 8 + 2 + 0
    assert shop.levels[(OTHER_ITEM, WEB_LOC)] == 0  # the engine has none of it
    # the store's own Shopify location still shows all of its stock, buffer included
    assert shop.levels[(ITEM, SHOP_LOC)] == (await store.position(sku, "store-a")).available == 5


async def test_pool_sale_at_one_location_changes_the_pushed_number(
    pusher: AvailabilityPush, shop: ShopifyStub, store: RedisStockStore, sku: str
) -> None:
    await pusher.sync_all()
    await drain(pusher)
    await sale(store, sku, "warehouse-a", 3, "w1")
    assert await drain(pusher) == 1
    assert shop.levels[(ITEM, WEB_LOC)] == 5 + 2
    await store.reserve("hold-1", "pos", [Line(sku, "store-a", 1)], 600)
    await drain(pusher)
    assert shop.levels[(ITEM, WEB_LOC)] == 5 + 1
    assert sorted(shop.history[-1]) == [4, 6]  # store-a's own level and the pool's, one call
    before = shop.mutations
    await sale(store, sku, "store-b", 2, "b1")  # store-b offered nothing: the sum stays
    assert await drain(pusher) == 1
    assert shop.levels[(ITEM, WEB_LOC)] == 6
    assert shop.mutations == before  # nothing to set


async def test_pool_changes_outside_the_pool_push_nothing(
    pusher: AvailabilityPush, shop: ShopifyStub, store: RedisStockStore, sku: str
) -> None:
    await pusher.sync_all()
    await drain(pusher)
    before = shop.mutations
    await sale(store, sku, "store-x", 5, "x1")
    assert await drain(pusher) == 1  # read and acknowledged
    assert shop.mutations == before
    assert shop.levels[(ITEM, WEB_LOC)] == 10


async def test_pool_burst_of_sales_is_one_push_of_the_final_value(
    pusher: AvailabilityPush, shop: ShopifyStub, store: RedisStockStore, sku: str
) -> None:
    await pusher.sync_all()
    await drain(pusher)
    before = shop.mutations
    for n in range(6):
        await sale(store, sku, "warehouse-a", 1, f"burst-{n}")
    assert await drain(pusher) == 6
    assert shop.mutations == before + 1
    assert shop.levels[(ITEM, WEB_LOC)] == 2 + 2


async def test_pool_reconfigured_buffers_and_locations_are_pushed_on_the_next_sync(
    pusher: AvailabilityPush, shop: ShopifyStub, store: RedisStockStore, sku: str
) -> None:
    await pusher.sync_all()
    assert shop.levels[(ITEM, WEB_LOC)] == 10
    # buffers changed, store-b dropped, store-x (50 units) joined with a big buffer
    await put_pool(store, POOL, [("warehouse-a", 0, 0), ("store-a", 1, 5), ("store-x", 2, 45)])
    assert await pusher.sync_all() == 1
    assert shop.levels[(ITEM, WEB_LOC)] == 10 + 0 + 5
    await drain(pusher)
    await sale(store, sku, "store-x", 2, "x1")  # store-x's changes now move the pool
    await drain(pusher)
    assert shop.levels[(ITEM, WEB_LOC)] == 10 + 0 + 3


async def test_pool_unknown_at_start_is_a_clear_error(
    shop: ShopifyStub, stub_server: StubServer, ctx: EngineContext, sku: str, tmp_path: Path
) -> None:
    mapping = write_mapping(tmp_path / "map.toml", {ITEM: sku}, pools={WEB_LOC: "no-such-pool"})
    async with stub_server(shop.app()) as base_url:
        connector = create(table(base_url, mapping, order_location_id="warehouse-a"))
        with pytest.raises(UnknownPool, match=r"no-such-pool.*does not exist"):
            await connector.run(ctx)
    assert shop.mutations == 0


async def test_pool_run_full_sync_every_interval_picks_up_a_reconfiguration(
    shop: ShopifyStub,
    stub_server: StubServer,
    ctx: EngineContext,
    store: RedisStockStore,
    stocked_pool: None,
    sku: str,
    tmp_path: Path,
) -> None:
    """No stock moves after the buffers change: only the periodic full sync can push it."""
    mapping = write_mapping(tmp_path / "map.toml", {ITEM: sku}, pools={WEB_LOC: POOL})
    async with stub_server(shop.app()) as base_url:
        connector = create(
            table(
                base_url,
                mapping,
                order_location_id="warehouse-a",
                full_sync_interval_seconds=0.05,
            )
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(connector.run, ctx)
            with anyio.fail_after(10):
                while shop.levels[(ITEM, WEB_LOC)] != 10:  # noqa: ASYNC110 (bounded poll)
                    await anyio.sleep(0.02)
                await put_pool(store, POOL, [(loc, prio, 0) for loc, prio, _ in POOL_LOCATIONS])
                while shop.levels[(ITEM, WEB_LOC)] != 10 + 5 + 3:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()


async def test_pool_in_another_domain_is_read_from_its_outbox(
    shop: ShopifyStub,
    stub_server: StubServer,
    ctx: EngineContext,
    store: RedisStockStore,
    sku: str,
    tmp_path: Path,
) -> None:
    for loc in ("store-eu-1", "store-eu-2"):
        await store.upsert_location(Location(loc, loc, "store", domain="eu"))
        await store.set_count(sku, loc, 10)
    assert await put_pool(store, "web-eu", [("store-eu-1", 0, 1), ("store-eu-2", 0, 2)]) == "eu"
    mapping = write_mapping(tmp_path / "map.toml", {ITEM: sku}, pools={WEB_LOC: "web-eu"})
    async with stub_server(shop.app()) as base_url:
        connector = create(table(base_url, mapping, order_location_id="store-eu-1"))
        async with connector.client() as client:
            push = connector.pusher(ctx, client)
            await push.attach()
            try:
                assert [o.domain for o in push.outboxes] == ["eu"]
                await push.sync_all()
                assert shop.levels[(ITEM, WEB_LOC)] == 9 + 8
                await sale(store, sku, "store-eu-2", 4, "eu-1")
                assert await drain(push) == 1
                assert shop.levels[(ITEM, WEB_LOC)] == 9 + 4
            finally:
                await push.detach()


async def test_pool_drift_compares_shopify_with_the_pool_offer(
    connector: ShopifyConnector, ctx: EngineContext, shop: ShopifyStub, stocked_pool: None, sku: str
) -> None:
    shop.levels[(ITEM, WEB_LOC)] = 13  # the pool offers 10
    shop.levels[(ITEM, SHOP_LOC)] = 5  # store-a's own level is right
    drifts = await connector.drift(ctx)
    assert drifts is not None
    assert [(d.sku, d.location_id, d.source, d.engine) for d in drifts] == [
        (sku, f"pool:{POOL}", 13, 10)
    ]
    gauge = connector_metrics(ctx.registry).drift.labels("shopify")._value.get()
    assert gauge == 3


async def test_pool_offer_equals_a_python_model_over_random_positions(
    ctx: EngineContext, store: RedisStockStore, sku: str
) -> None:
    """Σ max(0, on_hand - reserved - safety - buffer) per SKU, for 30 SKUs of random stock,
    holds and buffers (some locations below their buffer, some oversold by a till)."""
    rng = random.Random(14)
    locations = [
        (loc, prio, rng.randint(0, 5)) for prio, loc in enumerate(["wh-a", "st-a", "st-b"])
    ]
    for loc, _, _ in locations:
        await store.upsert_location(Location(loc, loc, "store"))
    await put_pool(store, POOL, locations)
    skus = [f"{sku}-{n}" for n in range(30)]
    expected: dict[str, int] = {}
    for n, each in enumerate(skus):
        total = 0
        for loc, _, buffer in locations:
            count, safety, held = rng.randint(0, 12), rng.randint(0, 2), rng.randint(0, 4)
            await store.set_count(each, loc, count, safety_stock=safety)
            if 0 < held <= count - safety:
                await store.reserve(f"h-{n}-{loc}", "web", [Line(each, loc, held)], 600)
            else:
                held = 0
            sold = rng.randint(0, 3)  # a till may sell past the holds
            if sold:
                await sale(store, each, loc, sold, f"t-{n}-{loc}")
            total += max(0, count - sold - held - safety - buffer)
        expected[each] = total
    pool = await get_pool(store, POOL)
    assert pool is not None
    assert pool.domain == "default"
    assert await pool_available_many(store, pool, skus) == expected
    assert any(v == 0 for v in expected.values())
    assert any(v > 0 for v in expected.values())
