"""Request and response bodies of transfers and incoming supply (stock beyond the shelf)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, Field, model_validator

from stocksync.api.schemas import (
    Flag,
    Integral,
    LocationId,
    Qty,
    Request,
    Sku,
    SupplyId,
    Timestamp,
)
from stocksync.domain.model import MAX_LINES, MAX_QTY
from stocksync.domain.transfers import SUPPLY_ID_PATTERN, TRANSFER_ID_PATTERN

TransferId = Annotated[str, Field(pattern=TRANSFER_ID_PATTERN, examples=["tr-2026-0042"])]
TransferIdPath = Annotated[str, Path(pattern=TRANSFER_ID_PATTERN)]
SupplyIdPath = Annotated[str, Path(pattern=SUPPLY_ID_PATTERN)]
# A receipt line may say that none of a SKU arrived.
ReceivedQty = Annotated[int, Field(strict=True, ge=0, le=MAX_QTY), Integral]


def _each_sku_once(skus: Sequence[str]) -> None:
    if len(set(skus)) != len(skus):
        raise ValueError("each SKU once: a SKU is named on two lines")


class TransferLineIn(Request):
    sku: Sku
    qty: Qty


class TransferIn(Request):
    """A shipment from one location to another of the same stock domain."""

    transfer_id: TransferId
    from_location_id: LocationId
    to_location_id: LocationId
    lines: Annotated[list[TransferLineIn], Field(min_length=1, max_length=MAX_LINES)]
    expected_at: Timestamp | None = Field(
        default=None, description="when the units are expected at the target"
    )
    force: Flag = Field(
        default=False,
        description="ship up to on_hand, not only what is available: holds left short are "
        "flagged at risk",
    )

    @model_validator(mode="after")
    def _valid(self) -> TransferIn:
        if self.from_location_id == self.to_location_id:
            raise ValueError("from_location_id and to_location_id differ")
        _each_sku_once([line.sku for line in self.lines])
        return self


class ReceiptLineIn(Request):
    sku: Sku
    qty: ReceivedQty


class ReceiptIn(Request):
    """What arrived: per SKU, at most what was shipped; a shipped SKU not named arrived 0."""

    lines: Annotated[list[ReceiptLineIn], Field(max_length=MAX_LINES)]
    supply_id: SupplyId | None = Field(
        default=None, description="the incoming supply at the target this receipt delivers"
    )

    @model_validator(mode="after")
    def _valid(self) -> ReceiptIn:
        _each_sku_once([line.sku for line in self.lines])
        return self


class TransferLineOut(BaseModel):
    sku: str
    shipped: int
    received: int = Field(description="0 until the transfer is received")
    shortfall: int = Field(description="shipped and not received (0 until received)")


class TransferOut(BaseModel):
    transfer_id: str
    from_location_id: str
    to_location_id: str
    state: Literal["shipped", "received", "cancelled"]
    lines: list[TransferLineOut]
    expected_at: datetime | None
    created_at: datetime
    updated_at: datetime
    replayed: bool = Field(description="this answer repeats an earlier one: nothing changed")
    supply_id: str | None = Field(
        default=None, description="the incoming supply its receipt consumed"
    )
    at_risk_reservations: int = Field(
        default=0, description="holds at the source a forced shipment flagged at risk"
    )


class TransferList(BaseModel):
    transfers: list[TransferOut]


class IncomingIn(Request):
    """An incoming supply (a purchase order, an announced delivery) at a position."""

    qty: Qty
    expected_at: Timestamp


class IncomingOut(BaseModel):
    supply_id: str
    sku: str
    location_id: str
    qty: int
    expected_at: datetime
