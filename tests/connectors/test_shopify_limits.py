"""The Shopify connector within Shopify's documented limits, against a stub that keeps them:
query cost, the cost bucket, idempotency answers and API versions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.framework.retry import Backoff
from connectors.framework.state import ConnectorState
from connectors.shopify.client import SetQuantity, ShopifyBusy, ShopifyClient, ShopifyError
from connectors.shopify.connector import ShopifyConnector, create
from connectors.shopify.push import AvailabilityPush
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore
from tests.support.shopify_connector import (
    ITEM,
    OTHER_ITEM,
    SHOP_LOC,
    drain,
    item_gid,
    location_gid,
    table,
    write_mapping,
)
from tests.support.shopify_stub import API_VERSION, TOKEN, CostBucket, ShopifyStub
from tests.support.store import add_location
from tests.support.stub_server import StubServer

FAST = Backoff(attempts=4, base_seconds=0.01, cap_seconds=0.05)
LOCATIONS = {location_gid(n): f"store-{letter}" for n, letter in enumerate("abc")}


def client(base_url: str, version: str = API_VERSION) -> ShopifyClient:
    return ShopifyClient(base_url, version, TOKEN, backoff=FAST)


# -- reads sized and paced by Shopify's cost rules --------------------------------------------


async def test_sync_all_of_200_items_at_three_locations_completes_and_pushes(
    ctx: EngineContext,
    stub_server: StubServer,
    store: RedisStockStore,
    sku: str,
    tmp_path: Path,
) -> None:
    items = {item_gid(n): f"{sku}-{n}" for n in range(200)}
    shop = ShopifyStub(
        levels={(item, loc): 0 for item in items for loc in LOCATIONS},
        bucket=CostBucket(maximum=1000, restore_rate=4000, available=1000),
    )
    for location_id in LOCATIONS.values():
        await add_location(store, location_id)
    wanted = {}
    for n, (item, each) in enumerate(items.items()):
        for k, (shop_loc, location_id) in enumerate(LOCATIONS.items()):
            await store.set_count(each, location_id, 1 + (n + k) % 7)
            wanted[(item, shop_loc)] = 1 + (n + k) % 7
    mapping = write_mapping(tmp_path / "map.toml", items, LOCATIONS)
    async with stub_server(shop.app()) as base_url:
        connector = create(table(base_url, mapping, order_location_id="store-a"))
        async with connector.client() as shopify:
            assert await connector.pusher(ctx, shopify).sync_all() == 600
            assert await connector.drift_with(ctx, shopify) == []
    assert shop.levels == wanted
    assert shop.mutations == 3  # 250 levels per inventorySetQuantities
    assert shop.cost_exceeded == 0
    assert max(shop.costs) <= 1000
    assert shop.throttled == 0  # paced by the bucket Shopify reported, never refused


async def test_available_splits_a_read_shopify_counts_over_the_limit(
    stub_server: StubServer,
) -> None:
    # Shopify may give a field a cost of its own, above the documented default
    items = [item_gid(n) for n in range(40)]
    shop = ShopifyStub(
        levels={(item, location_gid(0)): n for n, item in enumerate(items)},
        field_costs={"InventoryLevel.quantities": 30},
    )
    async with stub_server(shop.app()) as base_url, client(base_url) as shopify:
        found = await shopify.available(items, levels_hint=3)
    assert found == {(item, location_gid(0)): n for n, item in enumerate(items)}
    assert shop.cost_exceeded == 1  # told by how much, split once to fit
    assert max(shop.costs) <= 1000


async def test_available_split_gives_up_on_a_level_that_alone_is_over_the_limit(
    stub_server: StubServer,
) -> None:
    shop = ShopifyStub(levels={(ITEM, SHOP_LOC): 1}, field_costs={"InventoryLevel.location": 2000})
    async with stub_server(shop.app()) as base_url, client(base_url) as shopify:
        with pytest.raises(ShopifyError, match="over Shopify's cost limit"):
            await shopify.available([ITEM], levels_hint=8)
    assert shop.cost_exceeded == 4  # 8, 4, 2, 1 levels: bounded, then refused for good


async def test_available_pages_levels_past_the_first_page(stub_server: StubServer) -> None:
    shop = ShopifyStub(
        levels={(ITEM, location_gid(n)): n for n in range(300)} | {(OTHER_ITEM, SHOP_LOC): 7}
    )
    async with stub_server(shop.app()) as base_url, client(base_url) as shopify:
        found = await shopify.available([ITEM, OTHER_ITEM], levels_hint=1)
    assert found == {key: qty for key, qty in shop.levels.items()}
    assert max(shop.costs) <= 1000


@pytest.mark.parametrize("http_status", [200, 429])
async def test_throttled_read_waits_for_the_bucket_then_succeeds(
    stub_server: StubServer, http_status: int
) -> None:
    items = [item_gid(n) for n in range(50)]
    shop = ShopifyStub(
        levels={(item, SHOP_LOC): 3 for item in items}, throttled_http_status=http_status
    )
    async with stub_server(shop.app()) as base_url, client(base_url) as shopify:
        # Empty from now, and slow to refill: the first try comes well within the 1.2 s the
        # bucket needs for it, even on a loaded machine.
        shop.bucket = CostBucket(maximum=1000, restore_rate=250, available=0)
        found = await shopify.available(items, levels_hint=1)  # 50 x 6 = 300 points
        waited = shopify.pacer.waited_seconds
    assert len(found) == 50
    assert shop.throttled == 1  # the first try, before anything was known of the bucket
    assert 0.6 < waited < 4.0  # ~300 points at 250 a second, not a blind back-off


# -- idempotency answers are retried, and entries acknowledged only after success --------------


@pytest.fixture
def shop() -> ShopifyStub:
    return ShopifyStub(levels={(ITEM, SHOP_LOC): 0, (OTHER_ITEM, SHOP_LOC): 7})


@pytest.fixture
async def connector(
    shop: ShopifyStub, stub_server: StubServer, sku: str, tmp_path: Path
) -> AsyncIterator[ShopifyConnector]:
    mapping = write_mapping(tmp_path / "map.toml", {ITEM: sku, OTHER_ITEM: sku + "-other"})
    async with stub_server(shop.app()) as base_url:
        yield create(table(base_url, mapping))


@pytest.fixture
async def pusher(
    connector: ShopifyConnector, ctx: EngineContext, store: RedisStockStore, sku: str
) -> AsyncIterator[AvailabilityPush]:
    async with connector.client() as shopify:
        push = connector.pusher(ctx, shopify)
        await push.attach()
        await add_location(store)
        await store.set_count(sku, "store-a", 10)
        await push.sync_all()
        await drain(push)
        yield push
        await push.detach()


async def sold(store: RedisStockStore, sku: str) -> None:
    await store.adjust(sku, "store-a", -1, reason="sale", source="test", source_event_id="sale-1")


async def pending(store: RedisStockStore, push: AvailabilityPush) -> int:
    info: dict[str, Any] = await store.client.xpending(store.keys.outbox, push.group)
    return int(info["pending"])


def letters(ctx: EngineContext) -> list[object]:
    return list(ConnectorState(ctx.engine, "shopify").dead_letters())


async def test_push_concurrent_request_is_retried_with_its_key_then_acknowledged(
    pusher: AvailabilityPush,
    shop: ShopifyStub,
    store: RedisStockStore,
    ctx: EngineContext,
    sku: str,
) -> None:
    before = len(shop.keys)
    shop.concurrent_next = 2  # Shopify: "currently in progress, please try again"
    await sold(store, sku)
    assert await drain(pusher) == 1
    keys = shop.keys[before:]
    assert len(keys) == 3
    assert len(set(keys)) == 1  # the same request, retried
    assert shop.levels[(ITEM, SHOP_LOC)] == 9
    assert await pending(store, pusher) == 0
    assert letters(ctx) == []


async def test_push_still_in_progress_after_every_try_leaves_its_entries_pending(
    pusher: AvailabilityPush,
    shop: ShopifyStub,
    store: RedisStockStore,
    ctx: EngineContext,
    sku: str,
) -> None:
    shop.concurrent_next = 100  # more than the retry policy's attempts
    await sold(store, sku)
    with pytest.raises(ShopifyBusy):
        await pusher.drain_once()
    assert await pending(store, pusher) == 1  # not acknowledged, not dead-lettered
    assert letters(ctx) == []
    shop.concurrent_next = 0
    assert await drain(pusher) == 1
    assert shop.levels[(ITEM, SHOP_LOC)] == 9
    assert await pending(store, pusher) == 0


async def test_push_previous_attempt_failed_is_retried_with_a_new_key(
    pusher: AvailabilityPush,
    shop: ShopifyStub,
    store: RedisStockStore,
    ctx: EngineContext,
    sku: str,
) -> None:
    before = len(shop.keys)
    shop.fail_next = 1  # its key is spent: Shopify refuses it again, whatever we send
    await sold(store, sku)
    assert await drain(pusher) == 1
    first, second = shop.keys[before:]
    assert first != second
    assert shop.levels[(ITEM, SHOP_LOC)] == 9
    assert shop.mutations == 2  # the set-up's sync, and this push: once
    assert letters(ctx) == []


async def test_push_repeated_with_its_key_is_applied_once(stub_server: StubServer) -> None:
    shop = ShopifyStub(levels={(ITEM, SHOP_LOC): 1})
    async with stub_server(shop.app()) as base_url:
        body = {
            "query": (
                "mutation($input: InventorySetQuantitiesInput!) { inventorySetQuantities("
                'input: $input) @idempotent(key: "k-1") { userErrors { code } } }'
            ),
            "variables": {
                "input": {
                    "name": "available",
                    "reason": "correction",
                    "quantities": [
                        {
                            "inventoryItemId": ITEM,
                            "locationId": SHOP_LOC,
                            "quantity": 5,
                            "changeFromQuantity": 1,
                        }
                    ],
                }
            },
        }
        async with httpx.AsyncClient(base_url=base_url) as http:
            url = f"/admin/api/{API_VERSION}/graphql.json"
            headers = {"X-Shopify-Access-Token": TOKEN}
            answers = [(await http.post(url, json=body, headers=headers)).json() for _ in "ab"]
    assert answers[0]["data"] == answers[1]["data"]  # the original result, not a stale refusal
    assert shop.mutations == 1


# -- API versions -----------------------------------------------------------------------------


async def test_stub_refuses_the_push_on_an_api_version_before_2026_01(
    stub_server: StubServer,
) -> None:
    shop = ShopifyStub(levels={(ITEM, SHOP_LOC): 1})
    async with stub_server(shop.app()) as base_url, client(base_url, "2025-07") as shopify:
        with pytest.raises(ShopifyError, match=r"idempotent|changeFromQuantity"):
            await shopify.set_available([SetQuantity(ITEM, SHOP_LOC, 2, 1)], "gid://x/y/1")
    assert shop.levels[(ITEM, SHOP_LOC)] == 1


async def test_stub_refuses_unknown_arguments_and_oversized_input_arrays(
    stub_server: StubServer,
) -> None:
    shop = ShopifyStub(levels={(ITEM, SHOP_LOC): 1})
    unknown = (
        "{ nodes(ids: []) { ... on InventoryItem { inventoryLevels(first: 5, sort: 1) "
        "{ nodes { id } } } } }"
    )
    oversized = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    async with stub_server(shop.app()) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        url = f"/admin/api/{API_VERSION}/graphql.json"
        headers = {"X-Shopify-Access-Token": TOKEN}
        first = (await http.post(url, json={"query": unknown}, headers=headers)).json()
        ids = [item_gid(n) for n in range(251)]
        body = {"query": oversized, "variables": {"ids": ids}}
        second = (await http.post(url, json=body, headers=headers)).json()
        bad_version = await http.post("/admin/api/2026-05/graphql.json", json=body, headers=headers)
    assert "sort" in first["errors"][0]["message"]
    assert "251" in second["errors"][0]["message"]
    assert bad_version.status_code == 404
    assert shop.costs == []  # nothing ran
