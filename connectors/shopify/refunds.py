"""Pure mapping of Shopify's ``refunds/create`` webhook to an engine return (no I/O).

The payload is the REST Refund resource: ``refund_line_items[]`` each with ``quantity``,
``location_id`` (the restock location), ``restock_type`` and the order's ``line_item``
(https://shopify.dev/api/admin-rest/2025-01/resources/refund). ``restock_type``
(https://shopify.dev/docs/api/admin-graphql/latest/enums/RefundLineItemRestockType):

- ``return``: fulfilled units came back -> a line of the return, at the mapped location.
- ``cancel``: unfulfilled units were cancelled (the order's reservation is released by
  ``orders/cancelled``, not returned), ``no_restock``: refunded, nothing came back,
  ``legacy_restock``: refunds made before restock types existed (not written any more) ->
  no return line; counted by type.

The return is idempotent by the refund's id (``shopify-refund-<id>``) and names the reservation
the connector gives an order without a checkout hold (``shopify-order-<order_id>``): it is
linked when the engine has that reservation, else unlinked (the refund does not carry the
order's note attributes, so a hold the storefront named is not found from it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from connectors.framework.commands import RecordReturn, ReturnedUnits, Unmappable
from connectors.shopify.config import ShopifyIdMap
from connectors.shopify.mapping import LineItem, line_sku
from stocksync.domain.model import MAX_LINES, MAX_QTY, Disposition

REFUND_TOPIC = "refunds/create"
RETURN = "return"
SOURCE = "shopify"


class RefundLineItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int | None = None
    quantity: int = Field(ge=0)
    location_id: int | None = None
    restock_type: str
    line_item: LineItem | None = None


class Refund(BaseModel):
    """The fields of the ``refunds/create`` payload that matter here (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore")

    id: int
    order_id: int
    refund_line_items: list[RefundLineItem] = Field(default_factory=list)


@dataclass(frozen=True)
class RefundPlan:
    """What a refund becomes: the return (None when no line came back) and the lines that are
    not part of it, counted by why (their restock type, ``unmapped``, ``not_physical``)."""

    command: RecordReturn | None
    skipped: dict[str, int] = field(default_factory=dict)


def refund_return_id(refund: Refund) -> str:
    return f"shopify-refund-{refund.id}"


def order_reservation_id(order_id: int) -> str:
    """The reservation ``orders/create`` gives an order without a checkout hold."""
    return f"shopify-order-{order_id}"


def refund_location(line: RefundLineItem, idmap: ShopifyIdMap) -> str:
    """The stocksync location units were restocked at (a physical one: a Shopify location
    mapped to a pool names no store)."""
    if line.location_id is None:
        raise Unmappable(f"refund line {line.id} is a return without a location_id")
    gid = f"gid://shopify/Location/{line.location_id}"
    location = idmap.locations.get(gid)
    if location is None:
        raise Unmappable(f"refund line {line.id}: location {gid} is not in [locations]")
    return location


def refund_plan(
    refund: Refund,
    idmap: ShopifyIdMap,
    disposition: Disposition,
    *,
    ignore_unmapped: bool = False,
) -> RefundPlan:
    """The return of a refund's ``return`` lines, merged per (SKU, location)."""
    units: dict[tuple[str, str], int] = {}
    skipped: Counter[str] = Counter()
    for line in refund.refund_line_items:
        if line.restock_type != RETURN:
            skipped[line.restock_type[:32] or "unknown"] += 1
            continue
        item = line.line_item
        if item is None:
            raise Unmappable(f"refund line {line.id} has no line_item")
        if line.quantity == 0 or item.gift_card or not item.requires_shipping:
            skipped["not_physical"] += 1
            continue
        sku = line_sku(item, idmap)
        if sku is None:
            if ignore_unmapped:
                skipped["unmapped"] += 1
                continue
            raise Unmappable(
                f"refund {refund.id} line {line.id} (sku {item.sku!r}, variant "
                f"{item.variant_id}) is not in the mapping file"
            )
        key = (sku, refund_location(line, idmap))
        units[key] = units.get(key, 0) + line.quantity
    if len(units) > MAX_LINES:
        raise Unmappable(f"refund {refund.id} returns more than {MAX_LINES} SKU-locations")
    too_many = [sku for (sku, _), qty in units.items() if qty > MAX_QTY]
    if too_many:
        raise Unmappable(f"refund {refund.id} returns more than {MAX_QTY} of {too_many[0]}")
    if not units:
        return RefundPlan(None, dict(skipped))
    lines = tuple(
        ReturnedUnits(sku, location, qty, disposition)
        for (sku, location), qty in sorted(units.items())
    )
    command = RecordReturn(
        refund_return_id(refund),
        lines,
        SOURCE,
        reservation_id=order_reservation_id(refund.order_id),
        link_if_found=True,
    )
    return RefundPlan(command, dict(skipped))
