"""Pure functions: Shopify order webhooks -> engine commands, engine positions -> pushes.

No I/O here: everything these functions need is passed in, so they are unit-tested with
payloads shaped like Shopify's documented examples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from connectors.framework.commands import CancelOrder, PlaceOrder, Unmappable
from connectors.shopify.config import ShopifyIdMap
from stocksync.domain.model import ID_PATTERN, MAX_LINES, MAX_QTY, Line, Position

RESERVATION_ATTRIBUTE = "stocksync_reservation_id"
ORDER_TOPICS = frozenset({"orders/create", "orders/cancelled"})
_ID = re.compile(ID_PATTERN)


class NoteAttribute(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    value: str | None = None


class LineItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int | None = None
    sku: str | None = None
    variant_id: int | None = None
    quantity: int = Field(ge=0)
    requires_shipping: bool = True
    gift_card: bool = False


class Order(BaseModel):
    """The fields of Shopify's order webhook payload that matter here (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore")

    id: int
    name: str | None = None
    note_attributes: list[NoteAttribute] = Field(default_factory=list)
    line_items: list[LineItem] = Field(default_factory=list)
    location_id: int | None = None


def reservation_id(order: Order) -> str:
    """The hold the storefront placed for this checkout (a cart attribute that became a note
    attribute), else an id derived from the order, so a redelivery finds the same one."""
    for attribute in order.note_attributes:
        if attribute.name == RESERVATION_ATTRIBUTE and attribute.value:
            if not _ID.match(attribute.value):
                raise Unmappable(f"note attribute {RESERVATION_ATTRIBUTE} is not a valid id")
            return attribute.value
    return f"shopify-order-{order.id}"


def _variant_sku(line: LineItem, idmap: ShopifyIdMap) -> str | None:
    if line.variant_id is None:
        return None
    for key in (str(line.variant_id), f"gid://shopify/ProductVariant/{line.variant_id}"):
        if key in idmap.variants:
            return idmap.variants[key]
    return None


def line_sku(line: LineItem, idmap: ShopifyIdMap) -> str | None:
    """The SKU of an order line: its variant's mapping first, then its ``sku`` if we track it."""
    mapped = _variant_sku(line, idmap)
    if mapped is not None:
        return mapped
    if line.sku and line.sku in set(idmap.skus.values()):
        return line.sku
    return None


def order_location(order: Order, idmap: ShopifyIdMap, default: str) -> str:
    """A POS order names its Shopify location; online orders reserve at ``default``."""
    if order.location_id is not None:
        mapped = idmap.locations.get(f"gid://shopify/Location/{order.location_id}")
        if mapped is not None:
            return mapped
    return default


def order_lines(
    order: Order, idmap: ShopifyIdMap, location_id: str, ignore_unmapped: bool
) -> tuple[Line, ...]:
    qty_by_sku: dict[str, int] = {}
    for line in order.line_items:
        if line.quantity == 0 or line.gift_card or not line.requires_shipping:
            continue  # nothing physical to hold
        sku = line_sku(line, idmap)
        if sku is None:
            if ignore_unmapped:
                continue
            raise Unmappable(
                f"order {order.id} line {line.id} (sku {line.sku!r}, variant {line.variant_id})"
                " is not in the mapping file"
            )
        qty_by_sku[sku] = qty_by_sku.get(sku, 0) + line.quantity
    if len(qty_by_sku) > MAX_LINES:
        raise Unmappable(f"order {order.id} has more than {MAX_LINES} distinct SKUs")
    too_many = [sku for sku, qty in qty_by_sku.items() if qty > MAX_QTY]
    if too_many:
        raise Unmappable(f"order {order.id} asks for more than {MAX_QTY} of {too_many[0]}")
    return tuple(Line(sku, location_id, qty) for sku, qty in sorted(qty_by_sku.items()))


def order_commands(
    topic: str,
    order: Order,
    idmap: ShopifyIdMap,
    *,
    default_location: str,
    channel: str,
    ignore_unmapped: bool = False,
) -> list[PlaceOrder | CancelOrder]:
    """``orders/create`` -> PlaceOrder (confirm the hold, or reserve+confirm); ``orders/cancelled``
    -> CancelOrder (release). An order with nothing stocksync tracks maps to no command."""
    rid = reservation_id(order)
    if topic == "orders/cancelled":
        return [CancelOrder(rid)]
    if topic != "orders/create":
        raise Unmappable(f"topic {topic!r} is not an order topic this connector handles")
    location = order_location(order, idmap, default_location)
    lines = order_lines(order, idmap, location, ignore_unmapped)
    return [PlaceOrder(rid, channel, lines)] if lines else []


# -- pushes: engine availability -> Shopify inventory levels -------------------------------


@dataclass(frozen=True)
class Level:
    """One Shopify inventory level: an inventory item at a location (both GIDs)."""

    item_id: str
    location_id: str


def mapped_levels(idmap: ShopifyIdMap) -> dict[tuple[str, str], Level]:
    """(sku, location_id) -> the Shopify level it is pushed to, for every mapped pair."""
    return {
        (sku, loc): Level(item, shop_loc)
        for item, sku in idmap.skus.items()
        for shop_loc, loc in idmap.locations.items()
    }


def touched(
    changed: Iterable[tuple[str, str]], levels: Mapping[tuple[str, str], Level]
) -> set[tuple[str, str]]:
    """The mapped positions among the (sku, location_id) an outbox batch changed (only the
    latest state matters); a location of '' stands for every location of the SKU."""
    locations_of: dict[str, list[str]] = {}
    for sku, loc in levels:
        locations_of.setdefault(sku, []).append(loc)
    found: set[tuple[str, str]] = set()
    for sku, loc in changed:
        if sku not in locations_of:
            continue
        if loc:
            if (sku, loc) in levels:
                found.add((sku, loc))
        else:  # a SKU-wide event (e.g. a rebuild): every mapped location of the SKU
            found.update((sku, each) for each in locations_of[sku])
    return found


def mapped_pool_levels(idmap: ShopifyIdMap) -> dict[tuple[str, str], Level]:
    """(sku, pool_id) -> the Shopify level it is pushed to, for every SKU at every Shopify
    location mapped to a pool."""
    return {
        (sku, pool_id): Level(item, shop_loc)
        for item, sku in idmap.skus.items()
        for shop_loc, pool_id in idmap.pools.items()
    }


def pools_touched(
    changed: Iterable[tuple[str, str]],
    levels: Mapping[tuple[str, str], Level],
    pool_locations: Mapping[str, frozenset[str]],
) -> set[tuple[str, str]]:
    """The mapped (sku, pool_id) whose availability an outbox batch may have changed: a
    change at any location of a pool touches the pool (its offered units are a sum over
    them); a location of '' stands for every location of the SKU."""
    pools_of_location: dict[str, list[str]] = {}
    for pool_id, locations in pool_locations.items():
        for location_id in locations:
            pools_of_location.setdefault(location_id, []).append(pool_id)
    pools_of_sku: dict[str, list[str]] = {}
    for sku, pool_id in levels:
        pools_of_sku.setdefault(sku, []).append(pool_id)
    found: set[tuple[str, str]] = set()
    for sku, loc in changed:
        mapped = pools_of_sku.get(sku)
        if not mapped:
            continue
        if not loc:  # a SKU-wide event: every mapped pool of the SKU
            found.update((sku, pool_id) for pool_id in mapped)
            continue
        found.update(
            (sku, pool_id) for pool_id in pools_of_location.get(loc, ()) if (sku, pool_id) in levels
        )
    return found


def offered(position: Position, buffer: int) -> int:
    """What a pool offers of one of its locations: the location's availability less the
    buffer kept back for the store, never below 0 (buffers are never sold through a pool)."""
    return max(0, position.available_raw - buffer)


def channel_available(position: Position) -> int:
    """What the web shop may sell: on_hand - reserved - safety, never below 0."""
    return position.available
