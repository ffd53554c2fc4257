"""The three connectors on one engine: the failures peers' trackers are full of, end to end.

A warehouse snapshot, a Square till and a Shopify shop (both stubs on loopback) share one SKU
at one store. Each test is one of the classic ways omnichannel stock goes wrong, and checks
that the engine stays the single truth and Shopify is told the truth.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.shopify.connector import create as create_shopify
from connectors.shopify.push import AvailabilityPush
from connectors.square.connector import SquareConnector
from connectors.square.connector import create as create_square
from connectors.warehouse.config import WarehouseConfig
from connectors.warehouse.importer import FileImporter
from stocksync.domain.model import Line, Location
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore
from tests.support.shopify_connector import ITEM as SHOP_ITEM
from tests.support.shopify_connector import SHOP_LOC, drain, table
from tests.support.shopify_connector import write_mapping as shop_mapping
from tests.support.shopify_stub import ShopifyStub
from tests.support.square_connector import ITEM as SQ_ITEM
from tests.support.square_connector import SQ_LOC, config_table
from tests.support.square_connector import write_mapping as square_mapping
from tests.support.square_payloads import adjustment, physical_count
from tests.support.square_stub import SquareStub
from tests.support.stub_server import StubServer

STORE = "store-a"


@dataclass
class Channels:
    ctx: EngineContext
    sku: str
    shop: ShopifyStub
    push: AvailabilityPush
    till: SquareStub
    square: SquareConnector
    wms: FileImporter
    inbox: Path

    async def snapshot(self, on_hand: int, as_of: datetime) -> str:
        path = self.inbox / f"snapshot-{as_of.timestamp()}.csv"
        path.write_text(f"sku,location_id,on_hand,as_of\n{self.sku},{STORE},{on_hand},{as_of}\n")
        return (await self.wms.import_file(path)).line()

    async def shopify_shows(self) -> int:
        await drain(self.push)
        return self.shop.levels[(SHOP_ITEM, SHOP_LOC)]


@pytest.fixture
async def channels(
    ctx: EngineContext, store: RedisStockStore, stub_server: StubServer, sku: str, tmp_path: Path
) -> AsyncIterator[Channels]:
    await store.upsert_location(Location(STORE, "Store A", "store", 52.52, 13.40, True, True))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    wms = FileImporter(ctx, WarehouseConfig(inbox=inbox, settle_seconds=0), "warehouse")
    shop = ShopifyStub(levels={(SHOP_ITEM, SHOP_LOC): 0})
    till = SquareStub()
    shop_map = shop_mapping(tmp_path / "shop.toml", {SHOP_ITEM: sku})
    square_map = square_mapping(tmp_path / "square.toml", {SQ_ITEM: sku})
    async with stub_server(shop.app()) as shop_url, stub_server(till.app()) as till_url:
        shopify = create_shopify(table(shop_url, shop_map))
        square = create_square(config_table(till_url, square_map))
        async with shopify.client() as client:
            push = shopify.pusher(ctx, client)
            await push.attach()
            yield Channels(ctx, sku, shop, push, till, square, wms, inbox)
            await push.detach()


def ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


async def test_snapshot_repeating_the_shelf_count_keeps_committed_units_off_the_web(
    channels: Channels, store: RedisStockStore
) -> None:
    """An ERP/WMS re-sends 20 on hand while 5 are held for web carts: the shop must show 15."""
    assert "1 applied" in await channels.snapshot(20, ago(minutes=10))
    await store.reserve("cart-1", "web", [Line(channels.sku, STORE, 5)], ttl_seconds=900)
    assert "1 applied" in await channels.snapshot(20, ago(minutes=1))
    position = await store.position(channels.sku, STORE)
    assert (position.on_hand, position.reserved) == (20, 5)
    assert await channels.shopify_shows() == 15


async def test_older_till_count_arriving_late_does_not_zero_the_shop(
    channels: Channels, store: RedisStockStore
) -> None:
    """A POS pull carries a count of 0 taken before the warehouse's count of 12: stale."""
    assert "1 applied" in await channels.snapshot(12, ago(minutes=5))
    channels.till.changes = [
        physical_count("PC-OLD", SQ_ITEM, SQ_LOC, "0", ago(minutes=30).isoformat()),
        adjustment("SALE-1", SQ_ITEM, SQ_LOC, "1", ago(minutes=2).isoformat()),
    ]
    summary = await channels.square.sync_once(channels.ctx)
    assert summary.outcomes == {"stale": 1, "applied": 1}
    assert (await store.position(channels.sku, STORE)).on_hand == 11
    assert await channels.shopify_shows() == 11


async def test_till_sells_the_unit_a_chat_customer_holds_and_the_shop_stops_selling_it(
    channels: Channels, store: RedisStockStore
) -> None:
    """The last unit is held for pickup; a walk-in buys it at the till: the sale stands, the
    hold is flagged at risk for re-sourcing, and the web shows none."""
    assert "1 applied" in await channels.snapshot(1, ago(minutes=10))
    await store.reserve("chat-7", "chat", [Line(channels.sku, STORE, 1)], ttl_seconds=3600)
    channels.till.changes = [
        adjustment("WALK-IN", SQ_ITEM, SQ_LOC, "1", ago(minutes=1).isoformat())
    ]
    await channels.square.sync_once(channels.ctx)
    position = await store.position(channels.sku, STORE)
    assert (position.on_hand, position.reserved, position.available_raw) == (0, 1, -1)
    assert (await store.get_reservation("chat-7")).at_risk
    assert await channels.shopify_shows() == 0
