"""Shopify ``refunds/create`` -> an engine return: the mapping (pure), then the webhook through
the connector against the real store."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from connectors.framework.commands import RecordReturn, ReturnedUnits, Unmappable
from connectors.framework.state import ConnectorState
from connectors.shopify.config import ShopifyIdMap, ShopifyReturns
from connectors.shopify.connector import ShopifyConnector, create
from connectors.shopify.refunds import Refund, RefundPlan, refund_plan
from connectors.shopify.webhook import signature
from stocksync.domain.errors import NotFound
from stocksync.domain.model import MAX_QTY, Disposition, Line, Location
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore
from tests.support.shopify_connector import table
from tests.support.shopify_payloads import refund

SHOP_LOC, SHOP_LOC2 = 487838322, 655441491
IDMAP = ShopifyIdMap(
    skus={"gid://shopify/InventoryItem/808950810": "IPOD2008RED"},
    locations={
        f"gid://shopify/Location/{SHOP_LOC}": "store-a",
        f"gid://shopify/Location/{SHOP_LOC2}": "store-b",
    },
    variants={"49148385": "IPOD2008RED"},
)


def plan(payload: dict[str, Any], disposition: Disposition = Disposition.RESTOCK) -> RefundPlan:
    return refund_plan(Refund.model_validate(payload), IDMAP, disposition)


def test_refund_plan_documented_example_returns_its_line_linked_to_the_order() -> None:
    assert plan(refund()) == RefundPlan(
        RecordReturn(
            "shopify-refund-929361464",
            (ReturnedUnits("IPOD2008RED", "store-a", 1, Disposition.RESTOCK),),
            "shopify",
            reservation_id="shopify-order-450789469",
            link_if_found=True,
        ),
        {},
    )


@pytest.mark.parametrize("disposition", list(Disposition))
def test_refund_plan_takes_the_configured_disposition(disposition: Disposition) -> None:
    found = plan(refund(), disposition).command
    assert found is not None
    assert [line.disposition for line in found.lines] == [disposition]


def test_refund_plan_counts_lines_that_are_not_returns_and_returns_the_rest() -> None:
    payload = refund(
        lines=[
            ("IPOD2008RED", 2, "return", SHOP_LOC),
            ("IPOD2008RED", 1, "no_restock", None),
            ("IPOD2008RED", 1, "cancel", SHOP_LOC),
            ("IPOD2008RED", 1, "return", SHOP_LOC2),
            ("IPOD2008RED", 3, "return", SHOP_LOC),
        ]
    )
    found = plan(payload)
    assert found.skipped == {"no_restock": 1, "cancel": 1}
    assert found.command is not None
    assert [(line.location_id, line.qty) for line in found.command.lines] == [
        ("store-a", 5),
        ("store-b", 1),
    ]


def test_refund_plan_without_a_returned_line_is_no_return() -> None:
    payload = refund(lines=[("IPOD2008RED", 1, "no_restock", None)])
    assert plan(payload) == RefundPlan(None, {"no_restock": 1})


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (("IPOD2008RED", 1, "return", None), "without a location_id"),
        (("IPOD2008RED", 1, "return", 99), "not in \\[locations\\]"),
        (("NOT-OURS", 1, "return", SHOP_LOC), "not in the mapping file"),
        (("IPOD2008RED", MAX_QTY + 1, "return", SHOP_LOC), f"more than {MAX_QTY}"),
    ],
)
def test_refund_plan_unmappable_return_line_spoils_the_refund(
    line: tuple[str, int, str, int | None], why: str
) -> None:
    payload = refund(lines=[("IPOD2008RED", 1, "return", SHOP_LOC), line])
    with pytest.raises(Unmappable, match=why):
        plan(payload)


def test_refund_plan_skips_unmapped_lines_when_told_to() -> None:
    payload = refund(lines=[("NOT-OURS", 1, "return", SHOP_LOC)])
    found = refund_plan(
        Refund.model_validate(payload), IDMAP, Disposition.RESTOCK, ignore_unmapped=True
    )
    assert found == RefundPlan(None, {"unmapped": 1})


def test_refund_model_refuses_a_line_without_restock_type() -> None:
    payload = refund()
    del payload["refund_line_items"][0]["restock_type"]
    with pytest.raises(ValueError, match="restock_type"):
        Refund.model_validate(payload)


# -- the webhook through the connector, against the real store ---------------------------


@dataclass
class Shop:
    connector: ShopifyConnector
    sku: str


@pytest.fixture
async def shop(store: RedisStockStore, tmp_path: Path, sku: str) -> Shop:
    for location_id in ("store-a", "store-b"):
        await store.upsert_location(Location(location_id, location_id, "store", ship=True))
        await store.set_count(sku, location_id, 10)
    mapping = tmp_path / "shopify-map.toml"
    mapping.write_text(
        f'[skus]\n"gid://shopify/InventoryItem/808950810" = "{sku}"\n'
        f'[locations]\n"gid://shopify/Location/{SHOP_LOC}" = "store-a"\n'
        f'"gid://shopify/Location/{SHOP_LOC2}" = "store-b"\n'
    )
    return Shop(create(table("http://127.0.0.1:9", mapping, order_location_id="store-a")), sku)


async def deliver(
    shop: Shop, ctx: EngineContext, payload: dict[str, Any], webhook_id: str = "w1"
) -> dict[str, Any]:
    body = json.dumps(payload).encode()
    headers = [
        (b"x-shopify-topic", b"refunds/create"),
        (b"x-shopify-hmac-sha256", signature("hush", body).encode()),
        (b"x-shopify-webhook-id", webhook_id.encode()),
    ]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    response = await shop.connector.handle_webhook(ctx, Request(scope, receive))
    assert response.status_code == 200
    answer: dict[str, Any] = json.loads(bytes(response.body))
    return answer


async def sold(store: RedisStockStore, sku: str, order_id: int, qty: int) -> str:
    """An order the connector reserved (no checkout hold), then fulfilled."""
    rid = f"shopify-order-{order_id}"
    await store.reserve(rid, "web", [Line(sku, "store-a", qty)], 600, confirm=True)
    await store.fulfill(rid)
    return rid


def returned(payload_lines: list[tuple[str, int, str, int | None]], **kw: Any) -> dict[str, Any]:
    return refund(lines=payload_lines, **kw)


async def test_webhook_refund_returns_restocked_units_linked_to_the_order(
    shop: Shop, ctx: EngineContext, store: RedisStockStore
) -> None:
    sku = shop.sku
    rid = await sold(store, sku, 7, 3)
    payload = returned([(sku, 2, "return", SHOP_LOC), (sku, 1, "no_restock", None)], order_id=7)
    answer = await deliver(shop, ctx, payload)
    assert answer["outcome"] == "applied"
    assert (answer["return_id"], answer["skipped"]) == (
        "shopify-refund-929361464",
        {"no_restock": 1},
    )
    recorded = await store.get_return("shopify-refund-929361464")
    assert recorded.reservation_id == rid
    assert (await store.position(sku, "store-a")).on_hand == 10 - 3 + 2


async def test_webhook_refund_of_an_order_the_engine_does_not_know_is_unlinked(
    shop: Shop, ctx: EngineContext, store: RedisStockStore
) -> None:
    sku = shop.sku
    answer = await deliver(shop, ctx, returned([(sku, 1, "return", SHOP_LOC2)], order_id=99))
    assert answer["outcome"] == "applied"
    assert (await store.get_return(answer["return_id"])).reservation_id is None
    assert (await store.position(sku, "store-b")).on_hand == 11


async def test_webhook_refund_of_an_order_fulfilled_before_the_return_window_is_unlinked(
    shop: Shop, ctx: EngineContext, store: RedisStockStore
) -> None:
    """Shopify took the units back; the engine no longer counts that order's earlier returns
    (its window closed), so the return is recorded as an unlinked one."""
    rid = await sold(store, shop.sku, 450789469, 2)
    long_ago = int(time.time() * 1000) - (store.settings.return_retention_seconds + 60) * 1000
    await store.client.hset(store.keys.reservation(rid), "h:fulfilled", long_ago)
    answer = await deliver(shop, ctx, returned([(shop.sku, 1, "return", SHOP_LOC)]))
    assert answer["outcome"] == "applied"
    assert (await store.get_return(answer["return_id"])).reservation_id is None
    assert (await store.position(shop.sku, "store-a")).on_hand == 10 - 2 + 1


@pytest.mark.parametrize(
    ("disposition", "after"),
    [("restock", (11, 0, 0)), ("inspect", (10, 1, 0)), ("damaged", (10, 0, 1))],
)
async def test_webhook_refund_puts_units_where_the_disposition_says(
    shop: Shop,
    ctx: EngineContext,
    store: RedisStockStore,
    disposition: str,
    after: tuple[int, int, int],
) -> None:
    config = shop.connector.config.model_copy(
        update={"returns": ShopifyReturns(disposition=Disposition(disposition))}
    )
    shop.connector.config = config
    await deliver(shop, ctx, returned([(shop.sku, 1, "return", SHOP_LOC2)]))
    position = await store.position(shop.sku, "store-b")
    assert (position.on_hand, position.quality_control, position.damaged) == after


async def test_webhook_refund_without_returned_lines_is_ignored_and_counted(
    shop: Shop, ctx: EngineContext, store: RedisStockStore
) -> None:
    lines = [(shop.sku, 1, "no_restock", None), (shop.sku, 2, "cancel", SHOP_LOC)]
    answer = await deliver(shop, ctx, returned(lines))
    assert answer["outcome"] == "ignored"
    assert answer["skipped"] == {"no_restock": 1, "cancel": 1}
    labels = {"connector": "shopify", "outcome": "skipped"}
    assert ctx.registry.get_sample_value("stocksync_connector_events_total", labels) == 2
    assert (await store.position(shop.sku, "store-a")).on_hand == 10


async def test_webhook_refund_delivered_twice_returns_once(
    shop: Shop, ctx: EngineContext, store: RedisStockStore
) -> None:
    await sold(store, shop.sku, 450789469, 2)
    payload = returned([(shop.sku, 2, "return", SHOP_LOC)])
    first = await deliver(shop, ctx, payload)
    before = await store.position(shop.sku, "store-a")
    again = await deliver(shop, ctx, payload, webhook_id="w2")
    assert (first["outcome"], again["outcome"]) == ("applied", "duplicate")
    assert await store.position(shop.sku, "store-a") == before


@pytest.mark.parametrize(
    ("fulfil", "qty", "code"),
    [(True, 3, "return_exceeds_fulfilled"), (False, 1, "reservation_not_fulfilled")],
)
async def test_webhook_refund_the_engine_refuses_is_dead_lettered_and_changes_nothing(
    shop: Shop, ctx: EngineContext, store: RedisStockStore, fulfil: bool, qty: int, code: str
) -> None:
    rid = "shopify-order-450789469"
    await store.reserve(rid, "web", [Line(shop.sku, "store-a", 2)], 600, confirm=True)
    if fulfil:
        await store.fulfill(rid)
    before = await store.position(shop.sku, "store-a")
    answer = await deliver(shop, ctx, returned([(shop.sku, qty, "return", SHOP_LOC)]))
    assert answer["outcome"] == "dead_letter"
    assert code in answer["reason"]
    [letter] = ConnectorState(ctx.engine, "shopify").dead_letters()
    assert json.loads(letter.payload)["id"] == 929361464
    assert await store.position(shop.sku, "store-a") == before
    with pytest.raises(NotFound):
        await store.get_return("shopify-refund-929361464")


async def test_webhook_unmappable_refund_is_dead_lettered_and_changes_nothing(
    shop: Shop, ctx: EngineContext, store: RedisStockStore
) -> None:
    lines = [(shop.sku, 1, "return", SHOP_LOC), (shop.sku, 1, "return", 12345)]
    answer = await deliver(shop, ctx, returned(lines))
    assert answer["outcome"] == "dead_letter"
    [letter] = ConnectorState(ctx.engine, "shopify").dead_letters()
    assert "not in [locations]" in letter.reason
    assert (await store.position(shop.sku, "store-a")).on_hand == 10
