"""Square's documented Inventory and Orders API objects, as far as the connector reads them.

Unknown fields are ignored (Square adds fields in new versions); the fields the mapping needs
are required, so a payload missing one fails validation and is dead-lettered.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SquareObject(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class InventoryPhysicalCount(SquareObject):
    """An absolute count of ``state`` units taken at ``occurred_at``."""

    id: str = Field(min_length=1, max_length=192)
    reference_id: str | None = None
    catalog_object_id: str
    catalog_object_type: str | None = None
    state: str
    location_id: str
    quantity: str
    occurred_at: str
    created_at: str | None = None


class AdjustmentReasonId(SquareObject):
    """Why an adjustment was made (https://developer.squareup.com/docs/inventory-api/
    adjustment-reasons, Beta): a standard ``type`` such as ``DAMAGED``, ``THEFT``, ``LOST``,
    ``SPOILAGE_WASTE``, or ``CUSTOM`` with the seller's ``custom_reason_id``."""

    type: str
    custom_reason_id: str | None = None


class InventoryAdjustment(SquareObject):
    """``quantity`` units moved from ``from_state`` to ``to_state`` at ``occurred_at``;
    ``reason_id`` only in Square-Versions that know adjustment reasons (absent otherwise)."""

    id: str = Field(min_length=1, max_length=192)
    reference_id: str | None = None
    from_state: str
    to_state: str
    location_id: str
    catalog_object_id: str
    catalog_object_type: str | None = None
    quantity: str
    occurred_at: str
    created_at: str | None = None
    transaction_id: str | None = None
    reason_id: AdjustmentReasonId | None = None


class InventoryTransfer(SquareObject):
    """``quantity`` units in ``state`` moved from one location to another at ``occurred_at``."""

    id: str = Field(min_length=1, max_length=192)
    reference_id: str | None = None
    state: str
    from_location_id: str
    to_location_id: str
    catalog_object_id: str
    catalog_object_type: str | None = None
    quantity: str
    occurred_at: str
    created_at: str | None = None


class InventoryChange(SquareObject):
    """One entry of ``changes``: a ``PHYSICAL_COUNT``, an ``ADJUSTMENT`` or a ``TRANSFER``."""

    type: str
    physical_count: InventoryPhysicalCount | None = None
    adjustment: InventoryAdjustment | None = None
    transfer: InventoryTransfer | None = None


class InventoryCount(SquareObject):
    """Square's computed count of ``state`` units, as of ``calculated_at``."""

    catalog_object_id: str
    catalog_object_type: str | None = None
    state: str
    location_id: str
    quantity: str
    calculated_at: str


class Page(SquareObject):
    """A page of a batch-retrieve response; items stay raw so one bad item spoils only itself."""

    cursor: str | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)


class ChangesPage(Page):
    changes: list[dict[str, Any]] = Field(default_factory=list)


class CountsPage(Page):
    counts: list[dict[str, Any]] = Field(default_factory=list)


class OrderLineItem(SquareObject):
    """A line of an order (https://developer.squareup.com/reference/square/objects/OrderLineItem):
    ``note`` is "An optional note associated with the line item" (at most 2,000 characters)."""

    uid: str | None = None
    catalog_object_id: str | None = None
    quantity: str | None = None
    note: str | None = None


class Order(SquareObject):
    """An order (https://developer.squareup.com/reference/square/objects/Order): ``reference_id``
    is "A client-specified ID to associate an entity in another system with this order" (at
    most 40 characters)."""

    id: str = Field(min_length=1, max_length=255)
    location_id: str | None = None
    reference_id: str | None = None
    line_items: list[OrderLineItem] | None = None


class OrdersPage(SquareObject):
    """A BatchRetrieveOrders response; orders stay raw so one bad order spoils only itself."""

    orders: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[dict[str, Any]] = Field(default_factory=list)


# Square documents ``event_id`` as "A unique ID for the event" with no length; its examples are
# UUIDs (36 characters). Ours, so that a body cannot carry an unbounded key: far above any id
# Square shows, and a key the engine takes whole or as a digest (mapping.event_key).
MAX_EVENT_ID_CHARS = 1_024


class WebhookData(SquareObject):
    """``data`` of a notification: for ``inventory.count.updated``, ``type`` is
    ``inventory_counts`` and ``object`` "Is absent if affected object was deleted"
    (https://developer.squareup.com/reference/square/inventory-api/webhooks/inventory.count.updated)."""

    type: str | None = None
    id: str | None = None
    object: dict[str, Any] | None = None


class WebhookEvent(SquareObject):
    """The envelope of every Square webhook notification."""

    merchant_id: str | None = None
    type: str
    event_id: str = Field(min_length=1, max_length=MAX_EVENT_ID_CHARS)
    created_at: str | None = None
    data: WebhookData = WebhookData()
