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
