"""The availability push against a Shopify stub on loopback and the real engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from connectors.framework.metrics import connector_metrics
from connectors.shopify.connector import ShopifyConnector, create
from connectors.shopify.push import AvailabilityPush
from stocksync.domain.model import Line, Location
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore
from tests.support.shopify_connector import ITEM, OTHER_ITEM, SHOP_LOC, drain, table, write_mapping
from tests.support.shopify_stub import ShopifyStub
from tests.support.stub_server import StubServer


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
    connector: ShopifyConnector, ctx: EngineContext
) -> AsyncIterator[AvailabilityPush]:
    async with connector.client() as client:
        push = connector.pusher(ctx, client)
        await push.attach()
        yield push
        await push.detach()


async def sold(store: RedisStockStore, sku: str, n: int, tag: str = "sale") -> None:
    await store.adjust(
        sku, "store-a", -1, reason="sale", source="test", source_event_id=f"{tag}-{n}"
    )


async def test_push_burst_of_changes_is_coalesced_into_one_push(
    pusher: AvailabilityPush,
    shop: ShopifyStub,
    store: RedisStockStore,
    stocked: Callable[..., Any],
    sku: str,
) -> None:
    await stocked(sku, 100)
    assert await pusher.sync_all() == 2  # ours, and the other item the engine has none of
    assert shop.levels[(ITEM, SHOP_LOC)] == 100
    assert shop.levels[(OTHER_ITEM, SHOP_LOC)] == 0
    await drain(pusher)  # the set-up's own events
    assert shop.mutations == 1
    for n in range(50):
        await sold(store, sku, n)
    assert await drain(pusher) == 50
    assert shop.levels[(ITEM, SHOP_LOC)] == (await store.position(sku, "store-a")).available == 50
    assert shop.mutations == 2  # the full sync, then one push for the whole burst
    assert shop.history[-1] == [50]
    # The accepted push is a propagation to the shop (sink=shopify).
    pushed = pusher.ctx.registry.get_sample_value(
        "stocksync_propagation_seconds_count", {"sink": "shopify"}
    )
    assert pushed is not None
    assert pushed >= 1
    pending = await store.client.xpending(store.keys.outbox, pusher.group)
    assert pending["pending"] == 0  # acknowledged after the push


async def test_push_stale_change_from_is_reread_and_retried(
    pusher: AvailabilityPush,
    shop: ShopifyStub,
    store: RedisStockStore,
    stocked: Callable[..., Any],
    sku: str,
) -> None:
    await stocked(sku, 10)
    await pusher.sync_all()
    shop.levels[(ITEM, SHOP_LOC)] = 999  # an admin edited Shopify behind our back
    await sold(store, sku, 1)
    await drain(pusher)
    assert shop.stale == 1
    assert shop.levels[(ITEM, SHOP_LOC)] == 9


async def test_push_channel_available_subtracts_holds_and_safety_and_clamps_at_zero(
    pusher: AvailabilityPush,
    shop: ShopifyStub,
    store: RedisStockStore,
    stocked: Callable[..., Any],
    sku: str,
) -> None:
    await stocked(sku, 10, safety=2)
    await pusher.sync_all()
    await store.reserve("hold-1", "web", [Line(sku, "store-a", 3)], 600)
    await drain(pusher)
    assert shop.levels[(ITEM, SHOP_LOC)] == 5
    for n in range(7):  # the till sells past the holds: availability goes negative
        await sold(store, sku, n)
    await drain(pusher)
    assert shop.levels[(ITEM, SHOP_LOC)] == 0


async def test_push_throttled_calls_back_off_and_succeed(
    pusher: AvailabilityPush, shop: ShopifyStub, stocked: Callable[..., Any], sku: str
) -> None:
    await stocked(sku, 4)
    shop.throttle_next = 2
    await pusher.sync_all()
    assert shop.throttle_next == 0
    assert shop.levels[(ITEM, SHOP_LOC)] == 4


async def test_push_unmapped_changes_are_acknowledged_without_a_push(
    pusher: AvailabilityPush,
    shop: ShopifyStub,
    store: RedisStockStore,
    stocked: Callable[..., Any],
    sku: str,
) -> None:
    await stocked(sku, 3)
    await pusher.sync_all()
    before = shop.mutations
    await stocked(sku + "-unmapped", 5)
    assert await drain(pusher) > 0
    assert shop.mutations == before


async def test_push_failed_push_leaves_entries_pending_and_retries_them(
    pusher: AvailabilityPush,
    shop: ShopifyStub,
    store: RedisStockStore,
    stocked: Callable[..., Any],
    sku: str,
) -> None:
    await stocked(sku, 8)
    await pusher.sync_all()
    await drain(pusher)
    await sold(store, sku, 1)
    shop.throttle_next = 100  # more than the retries
    with pytest.raises(Exception, match="throttled"):
        await pusher.drain_once()
    pending = await store.client.xpending(store.keys.outbox, pusher.group)
    assert pending["pending"] == 1
    shop.throttle_next = 0
    await drain(pusher)
    assert shop.levels[(ITEM, SHOP_LOC)] == 7
    assert (await store.client.xpending(store.keys.outbox, pusher.group))["pending"] == 0


async def test_run_pushes_until_cancelled_then_releases_its_group(
    connector: ShopifyConnector,
    ctx: EngineContext,
    shop: ShopifyStub,
    store: RedisStockStore,
    stocked: Callable[..., Any],
    sku: str,
) -> None:
    await stocked(sku, 20)
    async with anyio.create_task_group() as tg:
        tg.start_soon(connector.run, ctx)
        with anyio.fail_after(10):
            while shop.levels[(ITEM, SHOP_LOC)] != 20:  # noqa: ASYNC110 (bounded poll: full sync)
                await anyio.sleep(0.02)
            await sold(store, sku, 1)
            while shop.levels[(ITEM, SHOP_LOC)] != 19:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    groups = await store.client.xinfo_groups(store.keys.outbox)
    assert "connector:shopify" not in {g["name"] for g in groups}  # never holds back trimming


async def test_drift_reports_shopify_available_against_the_engine(
    connector: ShopifyConnector,
    ctx: EngineContext,
    shop: ShopifyStub,
    stocked: Callable[..., Any],
    sku: str,
) -> None:
    await stocked(sku, 6)
    await stocked(sku + "-other", 7)
    shop.levels[(ITEM, SHOP_LOC)] = 4
    drifts = await connector.drift(ctx)
    assert drifts is not None
    assert [(d.sku, d.source, d.engine) for d in drifts] == [(sku, 4, 6)]
    gauge = connector_metrics(ctx.registry).drift.labels("shopify")._value.get()
    assert gauge == 2


async def test_push_reads_the_positions_of_a_page_in_one_batched_call(
    pusher: AvailabilityPush,
    shop: ShopifyStub,
    store: RedisStockStore,
    stocked: Callable[..., Any],
    sku: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await stocked(sku, 10)
    await stocked(sku + "-other", 3)
    sizes: list[int] = []
    send = store.batcher._send

    async def observed(ops: Any) -> list[Any]:
        sizes.append(len(ops))
        return await send(ops)

    monkeypatch.setattr(store.batcher, "_send", observed)
    wanted = await pusher.targets([(sku, "store-a"), (sku + "-other", "store-a")])

    assert sorted(wanted.values()) == [3, 10]
    assert sizes == [2]  # both SKUs' reads in one FCALL, not one round trip per SKU


EU_SHOP_LOC = "gid://shopify/Location/655441492"


async def test_push_reads_every_mapped_domain(
    stub_server: StubServer, ctx: EngineContext, store: RedisStockStore, sku: str, tmp_path: Path
) -> None:
    """Mapped locations in two stock domains: both domains' positions are pushed, and a
    change in either domain's outbox reaches Shopify."""
    shop = ShopifyStub(levels={(ITEM, SHOP_LOC): 0, (ITEM, EU_SHOP_LOC): 0})
    await store.upsert_location(Location("store-a", "A", "store"))
    await store.upsert_location(Location("store-eu", "EU", "store", domain="eu"))
    await store.set_count(sku, "store-a", 10)
    await store.set_count(sku, "store-eu", 20)
    mapping = write_mapping(
        tmp_path / "map.toml", {ITEM: sku}, {SHOP_LOC: "store-a", EU_SHOP_LOC: "store-eu"}
    )
    async with stub_server(shop.app()) as base_url:
        connector = create(table(base_url, mapping, order_location_id="store-a"))
        async with connector.client() as client:
            push = connector.pusher(ctx, client)
            await push.attach()
            try:
                assert sorted(o.domain for o in push.outboxes) == ["default", "eu"]
                assert await push.sync_all() == 2
                assert (shop.levels[(ITEM, SHOP_LOC)], shop.levels[(ITEM, EU_SHOP_LOC)]) == (10, 20)
                await store.adjust(
                    sku, "store-eu", -3, reason="sale", source="t", source_event_id="e1"
                )
                await store.adjust(
                    sku, "store-a", -1, reason="sale", source="t", source_event_id="a1"
                )
                assert await drain(push) == 2
                assert (shop.levels[(ITEM, SHOP_LOC)], shop.levels[(ITEM, EU_SHOP_LOC)]) == (9, 17)
            finally:
                await push.detach()
