"""Square inventory payloads -> engine commands. Pure: no I/O, no clock.

- ``PHYSICAL_COUNT`` of ``IN_STOCK`` units -> :class:`SetCount` as of ``occurred_at``.
- ``ADJUSTMENT`` ``IN_STOCK -> SOLD`` (or ``SOLD_ONLINE``) -> :class:`Sale`; when its
  ``reference_id`` starts with the reservation prefix (``stocksync:`` by default), the rest names
  the reservation the sale fulfils; otherwise the reservation found through the hold code on
  its order (:mod:`connectors.square.holds`), when the caller found one.
- ``ADJUSTMENT`` ``RETURNED_BY_CUSTOMER -> IN_STOCK`` (a till return the cashier restocked) or
  ``UNLINKED_RETURN -> IN_STOCK`` -> :class:`RecordReturn`, unlinked, its return id derived from
  the adjustment's id, its disposition the connector's (``[square.returns]``).
- ``ADJUSTMENT`` ``IN_STOCK -> WASTE`` ("lost or damaged and cannot be sold") -> a
  :class:`MoveUnits` out of on_hand: to ``damaged`` when its ``reason_id`` is ``DAMAGED``, else
  written off (both configurable, ``[square.waste]``). Square has no DAMAGED state: damage is
  a reason on a move to WASTE.
- Any other move into ``IN_STOCK`` adds to on_hand, any other move out of it subtracts; a move
  between two other states leaves on_hand alone and maps to no command.
- ``TRANSFER`` of ``IN_STOCK`` units between locations -> a delta out of one and into the
  other (only the side that is in the mapping file, when the other is not ours).
- ``inventory.count.updated`` webhook counts of ``IN_STOCK`` units -> :class:`SetCount` as of
  ``calculated_at``; so are the counts the poller reads (counts of items or locations that are
  not in the mapping file are not ours and map to nothing there).

Quantities are decimal strings: a fraction, a negative or an unmapped id raises
:class:`Unmappable`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from connectors.framework.commands import (
    Adjust,
    Command,
    MoveUnits,
    RecordReturn,
    ReturnedUnits,
    Sale,
    SetCount,
    Unmappable,
)
from connectors.framework.config import IdMap
from connectors.square.shapes import (
    InventoryAdjustment,
    InventoryChange,
    InventoryCount,
    InventoryPhysicalCount,
    InventoryTransfer,
)
from stocksync.domain.model import ID_PATTERN, MAX_QTY, WRITTEN_OFF, Bucket, Disposition

SOURCE = "square"
IN_STOCK = "IN_STOCK"
SOLD_STATES = frozenset({"SOLD", "SOLD_ONLINE"})
MAX_QUANTITY = 1_000_000_000
RECEIPT_STATES = frozenset({"NONE", "RECEIVED_FROM_VENDOR", "ORDERED_FROM_VENDOR"})
RETURN_STATES = frozenset({"RETURNED_BY_CUSTOMER", "UNLINKED_RETURN"})
WASTE = "WASTE"
DAMAGED_REASON = "DAMAGED"  # InventoryAdjustmentReasonIdType
# The engine's ids (source event ids, reservation ids): the API's pattern, 1-128 characters.
ENGINE_ID = re.compile(ID_PATTERN)
_REASON = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # the engine's reasons (as the API takes them)


def event_key(*parts: str) -> str:
    """A source event id from Square's ids, joined by ``:``; a digest of them when the result
    would not fit the engine's ids (Square bounds neither a webhook's ``event_id`` nor the
    characters of its ids), so the same parts always give the same id."""
    joined = ":".join(parts)
    if ENGINE_ID.match(joined):
        return joined
    return "sha256:" + hashlib.sha256(joined.encode()).hexdigest()[:48]


def parse_quantity(text: str) -> int:
    """A Square quantity ("3", "3.00000") as a whole, non-negative number of units."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise Unmappable(f"quantity {text!r} is not a decimal number") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise Unmappable(f"quantity {text!r} is not a whole number of units")
    if value < 0:
        raise Unmappable(f"quantity {text!r} is negative")
    if value > MAX_QUANTITY:
        raise Unmappable(f"quantity {text!r} is implausibly large")
    return int(value)


def parse_time_ms(text: str, field: str) -> int:
    """An RFC 3339 timestamp with its offset, as Unix milliseconds."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise Unmappable(f"{field} {text!r} is not an RFC 3339 timestamp") from None
    if moment.tzinfo is None:
        raise Unmappable(f"{field} {text!r} has no UTC offset")
    return int(moment.timestamp() * 1000)


def resolve(ids: IdMap, catalog_object_id: str, location_id: str) -> tuple[str, str]:
    """(SKU, location_id) of a Square catalog object at a Square location."""
    sku = ids.skus.get(catalog_object_id)
    if sku is None:
        raise Unmappable(f"catalog object {catalog_object_id!r} is not in the mapping file")
    location = ids.locations.get(location_id)
    if location is None:
        raise Unmappable(f"location {location_id!r} is not in the mapping file")
    return sku, location


def reservation_of(reference_id: str | None, prefix: str) -> str | None:
    """The reservation a sale names through its ``reference_id`` (``<prefix><id>``); None when
    the rest is not a reservation id the engine could have issued."""
    if reference_id and reference_id.startswith(prefix):
        named = reference_id[len(prefix) :]
        if ENGINE_ID.match(named):
            return named
    return None


@dataclass(frozen=True)
class BucketRules:
    """Where Square's returns and waste go (the ``[square.returns]`` and ``[square.waste]``
    tables): a return's disposition; the bucket an IN_STOCK -> WASTE move takes units to,
    ``damaged`` or ``written_off``, by whether its reason is DAMAGED."""

    return_disposition: Disposition = Disposition.INSPECT
    waste_to: str = WRITTEN_OFF
    damaged_waste_to: str = Bucket.DAMAGED.value


DEFAULT_RULES = BucketRules()


def return_id(adjustment_id: str) -> str:
    """The engine's return id of a Square return: stable, so a re-read return is a replay, and
    prefixed, so it cannot collide with another source's return ids."""
    return event_key(SOURCE, adjustment_id)


@dataclass(frozen=True)
class TillSale:
    """A sale whose hold, if any, its order may name: the adjustment and the order behind it."""

    adjustment_id: str
    order_id: str
    catalog_object_id: str
    location_id: str


def till_sale(raw: Mapping[str, Any], reservation_prefix: str) -> TillSale | None:
    """The sale of a changes entry that names no reservation itself but has an order
    (``transaction_id``); None for anything else, also an entry that does not validate (the
    mapping letters that one)."""
    try:
        change = InventoryChange.model_validate(raw)
    except ValidationError:
        return None
    sale = change.adjustment if change.type == "ADJUSTMENT" else None
    if (
        sale is None
        or sale.from_state != IN_STOCK
        or sale.to_state not in SOLD_STATES
        or not sale.transaction_id
        or reservation_of(sale.reference_id, reservation_prefix) is not None
    ):
        return None
    return TillSale(sale.id, sale.transaction_id, sale.catalog_object_id, sale.location_id)


def map_change(
    raw: Mapping[str, Any],
    ids: IdMap,
    reservation_prefix: str,
    holds: Mapping[str, str] | None = None,
    rules: BucketRules = DEFAULT_RULES,
) -> list[Command]:
    """One entry of a changes batch-retrieve; ``[]`` when it does not touch on_hand.

    ``holds``: adjustment id -> the reservation its sale collects, found through its order.
    """
    try:
        change = InventoryChange.model_validate(raw)
    except ValidationError as exc:
        raise Unmappable(f"not an InventoryChange: {_first_error(exc)}") from None
    if change.type == "PHYSICAL_COUNT" and change.physical_count is not None:
        return map_physical_count(change.physical_count, ids)
    if change.type == "ADJUSTMENT" and change.adjustment is not None:
        held = (holds or {}).get(change.adjustment.id)
        return map_adjustment(change.adjustment, ids, reservation_prefix, held, rules)
    if change.type == "TRANSFER" and change.transfer is not None:
        return map_transfer(change.transfer, ids)
    raise Unmappable(f"change of type {change.type!r} without its object is not supported")


def map_physical_count(count: InventoryPhysicalCount, ids: IdMap) -> list[Command]:
    if count.state != IN_STOCK:  # counts of other states say nothing about on_hand
        return []
    quantity = parse_quantity(count.quantity)
    as_of = parse_time_ms(count.occurred_at, "occurred_at")
    sku, location = resolve(ids, count.catalog_object_id, count.location_id)
    return [SetCount(sku, location, quantity, as_of, SOURCE, count.id)]


def map_adjustment(
    adjustment: InventoryAdjustment,
    ids: IdMap,
    reservation_prefix: str,
    collects: str | None = None,
    rules: BucketRules = DEFAULT_RULES,
) -> list[Command]:
    into, out_of = adjustment.to_state == IN_STOCK, adjustment.from_state == IN_STOCK
    if into == out_of:  # between two other states (or IN_STOCK to itself): on_hand unchanged
        return []
    quantity = parse_quantity(adjustment.quantity)
    occurred = parse_time_ms(adjustment.occurred_at, "occurred_at")
    sku, location = resolve(ids, adjustment.catalog_object_id, adjustment.location_id)
    if quantity == 0:
        return []
    if out_of and adjustment.to_state in SOLD_STATES:
        reservation = reservation_of(adjustment.reference_id, reservation_prefix) or collects
        return [Sale(sku, location, quantity, SOURCE, adjustment.id, occurred, reservation)]
    if into and adjustment.from_state in RETURN_STATES:
        units = ReturnedUnits(sku, location, _line_qty(quantity), rules.return_disposition)
        rid = return_id(adjustment.id)
        return [RecordReturn(rid, (units,), SOURCE, occurred_at_ms=occurred)]
    if out_of and adjustment.to_state == WASTE:
        return [_waste(adjustment, sku, location, _line_qty(quantity), occurred, rules)]
    delta = quantity if into else -quantity
    reason = _reason(adjustment.from_state, adjustment.to_state)
    return [Adjust(sku, location, delta, reason, SOURCE, adjustment.id, occurred)]


def _waste(
    adjustment: InventoryAdjustment,
    sku: str,
    location: str,
    quantity: int,
    occurred: int,
    rules: BucketRules,
) -> MoveUnits:
    """Units lost or damaged: damaged ones (reason DAMAGED) to their bucket, others written
    off; the move's reason is Square's standard reason when there is one ("waste" else)."""
    reason = adjustment.reason_id.type if adjustment.reason_id else None
    to_bucket = rules.damaged_waste_to if reason == DAMAGED_REASON else rules.waste_to
    label = (
        reason.lower()
        if reason and reason != "CUSTOM" and _REASON.match(reason.lower())
        else "waste"
    )
    return MoveUnits(
        sku,
        location,
        quantity,
        Bucket.ON_HAND.value,
        to_bucket,
        label,
        SOURCE,
        adjustment.id,
        occurred,
    )


def _line_qty(quantity: int) -> int:
    """A return line's or a move's units: the engine takes at most MAX_QTY in one."""
    if quantity > MAX_QTY:
        raise Unmappable(f"quantity {quantity} is above the engine's {MAX_QTY} per line")
    return quantity


def map_transfer(transfer: InventoryTransfer, ids: IdMap) -> list[Command]:
    """Units leave one location and arrive at another; each side is its own idempotent delta.

    A transfer to or from a location that is not in the mapping file (not one of ours) changes
    only our side; one between two locations that are not ours is unmappable.
    """
    if transfer.state != IN_STOCK:
        return []
    quantity = parse_quantity(transfer.quantity)
    occurred = parse_time_ms(transfer.occurred_at, "occurred_at")
    sku = ids.skus.get(transfer.catalog_object_id)
    if sku is None:
        raise Unmappable(
            f"catalog object {transfer.catalog_object_id!r} is not in the mapping file"
        )
    source = ids.locations.get(transfer.from_location_id)
    target = ids.locations.get(transfer.to_location_id)
    if source is None and target is None:
        raise Unmappable(
            f"neither location of transfer {transfer.id!r} is in the mapping file "
            f"({transfer.from_location_id!r} -> {transfer.to_location_id!r})"
        )
    if quantity == 0:
        return []
    commands: list[Command] = []
    if source is not None:
        commands.append(
            Adjust(sku, source, -quantity, "transfer_out", SOURCE, f"{transfer.id}:out", occurred)
        )
    if target is not None:
        commands.append(
            Adjust(sku, target, quantity, "transfer_in", SOURCE, f"{transfer.id}:in", occurred)
        )
    return commands


def _reason(from_state: str, to_state: str) -> str:
    if to_state == IN_STOCK and from_state in RECEIPT_STATES:
        return "receipt"
    if to_state == IN_STOCK and from_state in RETURN_STATES:
        return "return"
    if to_state == "WASTE":
        return "waste"
    return f"square:{from_state}->{to_state}".lower()


def map_count(raw: Mapping[str, Any], ids: IdMap, event_id: str) -> SetCount | None:
    """One ``inventory_counts[]`` entry of a webhook; None for a state other than IN_STOCK.

    Its source event id is the webhook's ``event_id`` with the catalog object and location, so
    a redelivered notification is a duplicate and two counts of one notification are not.
    """
    count = _inventory_count(raw)
    if count.state != IN_STOCK:
        return None
    quantity = parse_quantity(count.quantity)
    as_of = parse_time_ms(count.calculated_at, "calculated_at")
    sku, location = resolve(ids, count.catalog_object_id, count.location_id)
    source_event_id = event_key(event_id, count.catalog_object_id, count.location_id)
    return SetCount(sku, location, quantity, as_of, SOURCE, source_event_id)


def map_polled_count(raw: Mapping[str, Any], ids: IdMap) -> SetCount | None:
    """One count of the poller's counts batch-retrieve; None when it is not ours (a state
    other than IN_STOCK, an item or a location that is not in the mapping file).

    Keyed by what Square computed it from (``calculated_at``): re-reading an unchanged count is
    a duplicate, a count that changed is a new one.
    """
    count = _inventory_count(raw)
    sku = ids.skus.get(count.catalog_object_id)
    location = ids.locations.get(count.location_id)
    if count.state != IN_STOCK or sku is None or location is None:
        return None
    quantity = parse_quantity(count.quantity)
    as_of = parse_time_ms(count.calculated_at, "calculated_at")
    key = event_key("count", count.catalog_object_id, count.location_id, count.calculated_at)
    return SetCount(sku, location, quantity, as_of, SOURCE, key)


def _inventory_count(raw: Mapping[str, Any]) -> InventoryCount:
    try:
        return InventoryCount.model_validate(raw)
    except ValidationError as exc:
        raise Unmappable(f"not an InventoryCount: {_first_error(exc)}") from None


def map_source_count(raw: Mapping[str, Any], ids: IdMap) -> tuple[str, str, int] | None:
    """(SKU, location_id, units) of a counts batch-retrieve entry, for the drift check."""
    count = map_count(raw, ids, "drift")
    return None if count is None else (count.sku, count.location_id, count.on_hand)


def created_at(raw: Mapping[str, Any]) -> str | None:
    """``created_at`` of a change's object (what ``updated_after`` filters on)."""
    for key in ("physical_count", "adjustment", "transfer"):
        obj = raw.get(key)
        if isinstance(obj, Mapping) and isinstance(obj.get("created_at"), str):
            return str(obj["created_at"])
    return None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "payload"
    return f"{where}: {err.get('msg', 'invalid')} ({exc.error_count()} error(s))"
