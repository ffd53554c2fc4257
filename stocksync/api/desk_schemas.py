"""Bodies of the returns desk's read: what of an order may still come back."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ReturnableLineOut(BaseModel):
    sku: str
    fulfilled: int = Field(description="units of the SKU the order fulfilled (0 until it is)")
    returned: int = Field(description="units of the SKU returned so far, over all its returns")
    returnable: int = Field(description="units that may still come back: fulfilled - returned")


class ReturnableOut(BaseModel):
    """An order as a returns desk needs it: its state and, per SKU, what may still come back.
    No customer reference and no locations: the desk takes any order back at its own store."""

    reservation_id: str
    hold_code: str | None
    state: str
    lines: list[ReturnableLineOut] = Field(description="one per SKU, in the order's order")
    return_ids: list[str]
