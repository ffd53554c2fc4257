"""Square Inventory API payloads shaped like Square's documented examples (the builders the
Square tests and the Square stub share)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

SOURCE_APP = {
    "product": "SQUARE_POS",
    "application_id": "416ff29c-86c4-4feb-b58c-9705f21f3ea0",
    "name": "Square Point of Sale 4.37",
}


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ago(**delta: float) -> str:
    return rfc3339(datetime.now(UTC) - timedelta(**delta))


def physical_count(
    change_id: str, catalog: str, location: str, quantity: str, occurred_at: str, **extra: Any
) -> dict[str, Any]:
    """A ``PHYSICAL_COUNT`` change as in Square's BatchRetrieveInventoryChanges example."""
    return {
        "type": "PHYSICAL_COUNT",
        "physical_count": {
            "id": change_id,
            "reference_id": "22c07cf4-5626-4224-89f9-691112019399",
            "catalog_object_id": catalog,
            "catalog_object_type": "ITEM_VARIATION",
            "state": "IN_STOCK",
            "location_id": location,
            "quantity": quantity,
            "source": SOURCE_APP,
            "employee_id": "LRK57NSQ5X7PUD05",
            "occurred_at": occurred_at,
            "created_at": extra.pop("created_at", occurred_at),
            **extra,
        },
    }


def adjustment(
    change_id: str,
    catalog: str,
    location: str,
    quantity: str,
    occurred_at: str,
    from_state: str = "IN_STOCK",
    to_state: str = "SOLD",
    **extra: Any,
) -> dict[str, Any]:
    """An ``ADJUSTMENT`` change shaped like Square's InventoryAdjustment."""
    return {
        "type": "ADJUSTMENT",
        "adjustment": {
            "id": change_id,
            "from_state": from_state,
            "to_state": to_state,
            "location_id": location,
            "catalog_object_id": catalog,
            "catalog_object_type": "ITEM_VARIATION",
            "quantity": quantity,
            "total_price_money": {"amount": 4000, "currency": "USD"},
            "occurred_at": occurred_at,
            "created_at": extra.pop("created_at", occurred_at),
            "source": SOURCE_APP,
            "employee_id": "AV7YRCGI2H1J5NQ8E1XIZCNA",
            **extra,
        },
    }


def transfer(
    change_id: str,
    catalog: str,
    from_location: str,
    to_location: str,
    quantity: str,
    occurred_at: str,
    state: str = "IN_STOCK",
) -> dict[str, Any]:
    """A ``TRANSFER`` change shaped like Square's InventoryTransfer."""
    return {
        "type": "TRANSFER",
        "transfer": {
            "id": change_id,
            "state": state,
            "from_location_id": from_location,
            "to_location_id": to_location,
            "catalog_object_id": catalog,
            "catalog_object_type": "ITEM_VARIATION",
            "quantity": quantity,
            "occurred_at": occurred_at,
            "created_at": occurred_at,
            "source": SOURCE_APP,
        },
    }


def inventory_count(
    catalog: str, location: str, quantity: str, calculated_at: str, state: str = "IN_STOCK"
) -> dict[str, Any]:
    """An InventoryCount, as in counts batch-retrieve and ``inventory.count.updated``."""
    return {
        "catalog_object_id": catalog,
        "catalog_object_type": "ITEM_VARIATION",
        "state": state,
        "location_id": location,
        "quantity": quantity,
        "calculated_at": calculated_at,
    }


def count_updated_event(event_id: str, counts: list[dict[str, Any]]) -> dict[str, Any]:
    """An ``inventory.count.updated`` notification as Square documents it
    (https://developer.squareup.com/reference/square/inventory-api/webhooks/inventory.count.updated:
    ``data.type`` is ``inventory_counts``)."""
    return {
        "merchant_id": "6SSW7HV8K2ST5",
        "type": "inventory.count.updated",
        "event_id": event_id,
        "created_at": ago(seconds=1),
        "data": {
            "type": "inventory_counts",
            "id": "84e4ac73-d605-4dbd-a9e5-ffff794ddb9d",
            "object": {"inventory_counts": counts},
        },
    }


def line_item(catalog: str, quantity: str, note: str | None = None) -> dict[str, Any]:
    """An OrderLineItem as in Square's BatchRetrieveOrders example, of a catalog item."""
    item: dict[str, Any] = {
        "uid": f"{catalog[:8]}-{quantity}",
        "catalog_object_id": catalog,
        "name": "Tee, red, M",
        "quantity": quantity,
        "base_price_money": {"amount": 2000, "currency": "USD"},
        "total_money": {"amount": 2000 * int(quantity), "currency": "USD"},
    }
    if note is not None:
        item["note"] = note
    return item


def order(
    order_id: str,
    location: str,
    lines: list[dict[str, Any]],
    reference_id: str | None = None,
) -> dict[str, Any]:
    """An Order with the fields of Square's BatchRetrieveOrders example (``reference_id`` only
    when given: a Point of Sale sale has none unless someone writes one)."""
    total = sum(int(item["total_money"]["amount"]) for item in lines)
    out: dict[str, Any] = {
        "id": order_id,
        "location_id": location,
        "line_items": lines,
        "total_money": {"amount": total, "currency": "USD"},
    }
    if reference_id is not None:
        out["reference_id"] = reference_id
    return out
