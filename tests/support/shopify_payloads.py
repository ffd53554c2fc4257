"""Order webhook payloads shaped like Shopify's documented ``orders/create`` example
(trimmed to the fields that matter, plus a few that do not, as Shopify sends them)."""

from __future__ import annotations

import copy
from typing import Any

ORDER: dict[str, Any] = {
    "id": 820982911946154508,
    "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
    "name": "#9999",
    "email": "jon@example.com",
    "created_at": "2021-12-31T19:00:00-05:00",
    "currency": "USD",
    "financial_status": "voided",
    "cancelled_at": None,
    "location_id": None,
    "note": None,
    "note_attributes": [{"name": "gift_wrap", "value": "no"}],
    "line_items": [
        {
            "id": 866550311766439020,
            "admin_graphql_api_id": "gid://shopify/LineItem/866550311766439020",
            "name": "IPod Nano - 8GB",
            "price": "199.00",
            "product_id": 632910392,
            "quantity": 1,
            "requires_shipping": True,
            "sku": "IPOD2008PINK",
            "title": "IPod Nano - 8GB",
            "variant_id": 808950810,
            "variant_title": None,
            "vendor": None,
            "gift_card": False,
            "fulfillable_quantity": 1,
        },
        {
            "id": 141249953214522974,
            "admin_graphql_api_id": "gid://shopify/LineItem/141249953214522974",
            "name": "IPod Nano - 8GB",
            "price": "199.00",
            "product_id": 632910392,
            "quantity": 1,
            "requires_shipping": True,
            "sku": "IPOD2008PINK",
            "title": "IPod Nano - 8GB",
            "variant_id": 808950810,
            "gift_card": False,
            "fulfillable_quantity": 1,
        },
    ],
}


def order(
    order_id: int = 820982911946154508,
    *,
    reservation_id: str | None = None,
    lines: list[tuple[str | None, int, int | None]] | None = None,
) -> dict[str, Any]:
    """A copy of ORDER with another id, a ``stocksync_reservation_id`` note attribute, and
    lines ``(sku, quantity, variant_id)``."""
    payload = copy.deepcopy(ORDER)
    payload["id"] = order_id
    payload["admin_graphql_api_id"] = f"gid://shopify/Order/{order_id}"
    if reservation_id is not None:
        payload["note_attributes"].append(
            {"name": "stocksync_reservation_id", "value": reservation_id}
        )
    if lines is not None:
        template = payload["line_items"][0]
        payload["line_items"] = [
            {**template, "id": 1000 + n, "sku": sku, "quantity": qty, "variant_id": variant}
            for n, (sku, qty, variant) in enumerate(lines)
        ]
    return payload


# A refund line as in the REST Refund resource's example (https://shopify.dev/api/admin-rest/
# 2025-01/resources/refund): the ``refunds/create`` webhook posts that resource itself.
REFUND_LINE: dict[str, Any] = {
    "id": 1058498311,
    "quantity": 1,
    "line_item_id": 518995019,
    "location_id": 487838322,
    "restock_type": "return",
    "subtotal": 199.0,
    "total_tax": 3.98,
    "line_item": {
        "id": 518995019,
        "variant_id": 49148385,
        "title": "IPod Nano - 8gb",
        "quantity": 1,
        "sku": "IPOD2008RED",
        "variant_title": "red",
        "vendor": None,
        "fulfillment_service": "manual",
        "product_id": 632910392,
        "requires_shipping": True,
        "taxable": True,
        "gift_card": False,
        "name": "IPod Nano - 8gb - red",
        "fulfillable_quantity": 0,
        "price": "199.00",
        "admin_graphql_api_id": "gid://shopify/LineItem/518995019",
    },
}


def refund(
    refund_id: int = 929361464,
    order_id: int = 450789469,
    lines: list[tuple[str | None, int, str, int | None]] | None = None,
) -> dict[str, Any]:
    """A ``refunds/create`` payload; ``lines`` are ``(sku, quantity, restock_type,
    location_id)`` (default: the documented example's one returned line)."""
    payload: dict[str, Any] = {
        "id": refund_id,
        "order_id": order_id,
        "created_at": "2020-01-14T10:34:55-05:00",
        "note": "wrong size",
        "user_id": None,
        "processed_at": "2020-01-14T10:34:55-05:00",
        "restock": True,
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
        "refund_line_items": [copy.deepcopy(REFUND_LINE)],
        "transactions": [],
        "order_adjustments": [],
    }
    if lines is not None:
        payload["refund_line_items"] = []
        for n, (sku, qty, restock_type, location_id) in enumerate(lines):
            line = copy.deepcopy(REFUND_LINE)
            line.update(
                id=2000 + n, quantity=qty, restock_type=restock_type, location_id=location_id
            )
            line["line_item"].update(id=3000 + n, sku=sku, quantity=qty, variant_id=None)
            payload["refund_line_items"].append(line)
    return payload
