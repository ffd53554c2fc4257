"""Request and response bodies of the stock beyond the shelf (DESIGN "Vocabulary"): bucket
moves, returns, transfers, incoming supply. Strict and bounded like stocksync.api.schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stocksync.api.schemas import (
    EventId,
    Integral,
    LocationId,
    PositionOut,
    Qty,
    Request,
    Sku,
    Source,
)
from stocksync.domain.model import ID_PATTERN, MAX_LINES, Disposition

# -- bucket moves and returns ---------------------------------------------------------------

# A move's units: a whole pallet found damaged is one move (bounded like an adjustment).
MoveQty = Annotated[int, Field(strict=True, ge=1, le=1_000_000), Integral]
Reason = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$", examples=["inspection"])]
ReturnId = Annotated[str, Field(pattern=ID_PATTERN, examples=["ret-2026-11-0042"])]
ReservationId = Annotated[str, Field(pattern=ID_PATTERN, examples=["web-order-81723"])]
SourceBucket = Literal["on_hand", "damaged", "quality_control"]
TargetBucket = Literal["on_hand", "damaged", "quality_control", "written_off"]


class BucketMoveIn(Request):
    """Units of a position from one bucket to another; ``written_off`` takes them out of the
    books (scrapped). ``from`` and ``to`` differ."""

    from_: SourceBucket = Field(alias="from")
    to: TargetBucket
    qty: MoveQty
    reason: Reason
    source: Source
    source_event_id: EventId

    @model_validator(mode="after")
    def _two_buckets(self) -> BucketMoveIn:
        if self.from_ == self.to:
            raise ValueError("from and to name the same bucket")
        return self


class BucketMoveOut(PositionOut):
    """The position after the move (a replay: as it was after the original move)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    qty: int
    applied: bool
    replayed: bool
    seq: int
    at_risk_reservations: int = Field(description="holds newly flagged at risk by this move")


class ReturnLineIn(Request):
    sku: Sku
    location_id: LocationId = Field(description="where the units come back (any store)")
    qty: Qty
    disposition: Disposition = Field(
        description="restock: back on sale (on_hand); inspect: quality_control; damaged"
    )


class ReturnIn(Request):
    """Units back at one or more locations: of a fulfilled reservation, or (no
    ``reservation_id``) an unlinked till return. Each (sku, location_id) comes once."""

    return_id: ReturnId
    reservation_id: ReservationId | None = None
    lines: Annotated[list[ReturnLineIn], Field(min_length=1, max_length=MAX_LINES)]
    source: Source = "api"

    @model_validator(mode="after")
    def _each_position_once(self) -> ReturnIn:
        seen = set()
        for line in self.lines:
            if (line.sku, line.location_id) in seen:
                raise ValueError(f"{line.sku} at {line.location_id} comes more than once")
            seen.add((line.sku, line.location_id))
        return self


class ReturnLineOut(BaseModel):
    sku: str
    location_id: str
    qty: int
    disposition: Disposition


class ReturnOut(BaseModel):
    return_id: str
    reservation_id: str | None = Field(description="null: an unlinked till return")
    lines: list[ReturnLineOut]
    created_at: datetime
    replayed: bool
