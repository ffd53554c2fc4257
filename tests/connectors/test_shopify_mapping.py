"""Shopify order payloads -> engine commands, and webhook signatures (pure, no I/O)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from pydantic import ValidationError

from connectors.framework.commands import CancelOrder, PlaceOrder, Unmappable
from connectors.shopify.config import ShopifyIdMap
from connectors.shopify.mapping import (
    Level,
    Order,
    mapped_levels,
    mapped_pool_levels,
    offered,
    order_commands,
    pools_touched,
    reservation_id,
    touched,
)
from connectors.shopify.webhook import signature, verify
from stocksync.domain.model import Line, Position
from tests.support.shopify_payloads import ORDER, order

ITEM = "gid://shopify/InventoryItem/808950810"
SHOP_LOC = "gid://shopify/Location/655441491"
IDMAP = ShopifyIdMap(
    skus={ITEM: "IPOD2008PINK", "gid://shopify/InventoryItem/49148385": "IPOD2008RED"},
    locations={SHOP_LOC: "store-a", "gid://shopify/Location/24826418": "store-b"},
    variants={"49148385": "IPOD2008RED"},
)


def commands(topic: str, payload: dict[str, object], **kw: object) -> list[object]:
    return list(
        order_commands(
            topic,
            Order.model_validate(payload),
            IDMAP,
            default_location="warehouse-1",
            channel="web",
            **kw,  # type: ignore[arg-type]
        )
    )


def test_order_commands_documented_example_places_order_with_merged_lines() -> None:
    found = commands("orders/create", ORDER)
    assert found == [
        PlaceOrder(
            "shopify-order-820982911946154508", "web", (Line("IPOD2008PINK", "warehouse-1", 2),)
        )
    ]


def test_order_commands_note_attribute_names_the_checkout_hold() -> None:
    found = commands("orders/create", order(7, reservation_id="web-cart-42"))
    assert isinstance(found[0], PlaceOrder)
    assert found[0].reservation_id == "web-cart-42"


def test_order_commands_cancelled_releases_the_same_reservation() -> None:
    assert commands("orders/cancelled", order(7, reservation_id="web-cart-42")) == [
        CancelOrder("web-cart-42")
    ]
    assert commands("orders/cancelled", order(8)) == [CancelOrder("shopify-order-8")]


def test_order_commands_variant_map_resolves_lines_without_our_sku() -> None:
    found = commands("orders/create", order(9, lines=[("VENDOR-X", 3, 49148385)]))
    assert found == [PlaceOrder("shopify-order-9", "web", (Line("IPOD2008RED", "warehouse-1", 3),))]


def test_order_commands_pos_order_uses_its_mapped_location() -> None:
    payload = order(10)
    payload["location_id"] = 24826418
    found = commands("orders/create", payload)
    assert isinstance(found[0], PlaceOrder)
    assert {line.location_id for line in found[0].lines} == {"store-b"}


def test_order_commands_unmapped_line_is_unmappable_unless_ignored() -> None:
    payload = order(11, lines=[("IPOD2008PINK", 1, None), ("UNKNOWN", 1, 5)])
    with pytest.raises(Unmappable, match="not in the mapping file"):
        commands("orders/create", payload)
    found = commands("orders/create", payload, ignore_unmapped=True)
    assert found == [
        PlaceOrder("shopify-order-11", "web", (Line("IPOD2008PINK", "warehouse-1", 1),))
    ]


def test_order_commands_gift_cards_and_empty_orders_hold_nothing() -> None:
    payload = order(12, lines=[("GIFT", 1, None)])
    payload["line_items"][0]["gift_card"] = True
    assert commands("orders/create", payload) == []


def test_reservation_id_rejects_an_invalid_note_attribute() -> None:
    with pytest.raises(Unmappable):
        reservation_id(Order.model_validate(order(13, reservation_id="bad id with spaces")))


def test_order_model_rejects_a_payload_without_id() -> None:
    with pytest.raises(ValidationError, match="id"):
        Order.model_validate({"line_items": []})


def test_touched_coalesces_a_burst_to_mapped_positions() -> None:
    levels = mapped_levels(IDMAP)
    changed = [("IPOD2008PINK", "store-a")] * 50 + [
        ("OTHER", "store-a"),
        ("IPOD2008RED", "nowhere"),
        ("", "store-a"),
        ("IPOD2008RED", ""),
    ]
    assert touched(changed, levels) == {
        ("IPOD2008PINK", "store-a"),
        ("IPOD2008RED", "store-a"),
        ("IPOD2008RED", "store-b"),
    }
    assert levels[("IPOD2008PINK", "store-a")] == Level(ITEM, SHOP_LOC)


WEB_LOC = "gid://shopify/Location/1"
APP_LOC = "gid://shopify/Location/2"
POOLED = ShopifyIdMap(skus=IDMAP.skus, pools={WEB_LOC: "web-berlin", APP_LOC: "app-berlin"})
POOL_LOCATIONS = {
    "web-berlin": frozenset({"store-a", "warehouse-1"}),
    "app-berlin": frozenset({"warehouse-1"}),
}


def test_pools_touched_a_change_at_any_pool_location_touches_the_pool() -> None:
    levels = mapped_pool_levels(POOLED)
    assert levels[("IPOD2008PINK", "web-berlin")] == Level(ITEM, WEB_LOC)
    changed = [("IPOD2008PINK", "store-a")] * 20 + [
        ("IPOD2008RED", "warehouse-1"),  # in both pools
        ("IPOD2008PINK", "store-z"),  # in no pool
        ("OTHER", "store-a"),  # not mapped
    ]
    assert pools_touched(changed, levels, POOL_LOCATIONS) == {
        ("IPOD2008PINK", "web-berlin"),
        ("IPOD2008RED", "web-berlin"),
        ("IPOD2008RED", "app-berlin"),
    }


def test_pools_touched_a_sku_wide_event_touches_every_pool_of_the_sku() -> None:
    levels = mapped_pool_levels(POOLED)
    assert pools_touched([("IPOD2008RED", "")], levels, POOL_LOCATIONS) == {
        ("IPOD2008RED", "web-berlin"),
        ("IPOD2008RED", "app-berlin"),
    }
    assert pools_touched([("", "store-a")], levels, POOL_LOCATIONS) == set()


@pytest.mark.parametrize(
    ("on_hand", "reserved", "safety", "buffer", "expected"),
    [(10, 0, 0, 2, 8), (10, 3, 1, 2, 4), (3, 0, 0, 4, 0), (2, 5, 0, 0, 0), (5, 0, 0, 0, 5)],
)
def test_offered_withholds_the_buffer_and_never_goes_below_zero(
    on_hand: int, reserved: int, safety: int, buffer: int, expected: int
) -> None:
    assert offered(Position("S", "L", on_hand, reserved, safety), buffer) == expected


def test_idmap_refuses_an_invalid_pool_id() -> None:
    with pytest.raises(ValidationError, match="not a valid pool id"):
        ShopifyIdMap(pools={WEB_LOC: "Web Berlin"})


def test_idmap_refuses_a_shopify_location_mapped_to_a_location_and_a_pool() -> None:
    with pytest.raises(ValidationError, match="both \\[locations\\] and \\[pools\\]"):
        ShopifyIdMap(locations={WEB_LOC: "store-a"}, pools={WEB_LOC: "web-berlin"})


def test_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"id": 1}'
    expected = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
    assert signature("s3cret", body) == expected
    assert verify("s3cret", body, expected)


def test_verify_rejects_a_wrong_missing_or_tampered_signature() -> None:
    body = b'{"id": 1}'
    good = signature("s3cret", body)
    assert not verify("other", body, good)
    assert not verify("s3cret", body + b" ", good)
    assert not verify("s3cret", body, None)
    assert not verify("s3cret", body, "")
