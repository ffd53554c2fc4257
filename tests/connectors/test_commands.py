"""Engine commands: what they show of themselves when named in a dead letter or a log line."""

from __future__ import annotations

from connectors.framework.commands import PlaceOrder
from stocksync.domain.model import Line


def test_place_order_repr_leaves_out_the_customer_reference() -> None:
    order = PlaceOrder("order-1", "web", (Line("SKU-1", "store-a", 1),), customer_ref="crm-42")
    assert "crm-42" not in repr(order)
    assert "order-1" in repr(order)
    assert order.customer_ref == "crm-42"
