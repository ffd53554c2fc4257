"""Request and response bodies. Requests are strict, bounded and refuse unknown fields."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from stocksync.domain.codes import HOLD_CODE_PATTERN
from stocksync.domain.geo import GEO_LAT_MAX, GEO_LON_MAX
from stocksync.domain.model import (
    CHANNEL_PATTERN,
    DEFAULT_DOMAIN,
    DOMAIN_PATTERN,
    ID_PATTERN,
    LOCATION_PATTERN,
    MAX_LINES,
    MAX_QTY,
    POOL_PATTERN,
    SKU_PATTERN,
)
from stocksync.domain.transfers import SUPPLY_ID_PATTERN

# RFC 3339 date-time with an offset (JSON Schema's date-time), ASCII digits only.
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _integral(value: object) -> object:
    """5.0 is the integer 5: JSON has one number type, and JSON Schema's ``integer`` admits any
    number whose fraction is zero (clients that serialise through doubles send 5.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _rfc3339_text(value: object) -> object:
    """A timestamp is what the schema says, an RFC 3339 string with an offset: not a number of
    seconds, nor any other text pydantic could read as a time."""
    if not (isinstance(value, str) and RFC3339.fullmatch(value)):
        raise ValueError("expected an RFC 3339 date-time with an offset, e.g. 2026-11-26T10:00:00Z")
    return value


# Integers are otherwise strict: "5", 5.5 and true are refused, not coerced (bad input changes
# nothing). A validator goes after the Field: before it, the schema would lose the bounds.
Integral = BeforeValidator(_integral)
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]

# The largest integer the ledger's BIGINT columns (and the SQL drivers' parameters) hold: a
# larger query bound overflowed the driver and answered 500.
SQL_BIGINT_MAX = 2**63 - 1

Sku = Annotated[str, Field(pattern=SKU_PATTERN, examples=["SOFA-VELVET-GREEN"])]
LocationId = Annotated[str, Field(pattern=LOCATION_PATTERN, examples=["store-berlin-mitte"])]
Qty = Annotated[int, Field(strict=True, ge=1, le=MAX_QTY), Integral]
Units = Annotated[int, Field(strict=True, ge=0, le=1_000_000_000), Integral]
Source = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", examples=["pos"])]
EventId = Annotated[str, Field(pattern=ID_PATTERN)]
# An incoming supply (a purchase order, an announced delivery) at a position.
SupplyId = Annotated[str, Field(pattern=SUPPLY_ID_PATTERN, examples=["po-4711"])]
CUSTOMER_REF_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"  # an opaque id, never personal data
CustomerRef = Annotated[str, Field(pattern=CUSTOMER_REF_PATTERN)]
TtlSeconds = Annotated[int, Field(strict=True, ge=1, le=90 * 24 * 3600), Integral]
Flag = Annotated[bool, Field(strict=True)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocationIn(Request):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    kind: Literal["store", "warehouse"]
    # Redis GEO's range (Web Mercator): it cannot index a latitude beyond ±85.05112878°.
    lat: Annotated[float, Field(strict=True, ge=-GEO_LAT_MAX, le=GEO_LAT_MAX)] | None = None
    lon: Annotated[float, Field(strict=True, ge=-GEO_LON_MAX, le=GEO_LON_MAX)] | None = None
    pickup: Flag = False
    ship: Flag = False
    # The stock domain (DESIGN rule 2): set when the location is created; moving it to
    # another domain is an offline operation (`stocksync domains move-location`).
    domain: Annotated[str, Field(pattern=DOMAIN_PATTERN, examples=["de"])] = DEFAULT_DOMAIN


class LocationOut(BaseModel):
    location_id: str
    name: str
    kind: str
    lat: float | None
    lon: float | None
    pickup: bool
    ship: bool
    domain: str


class LocationList(BaseModel):
    locations: list[LocationOut]


class CountIn(Request):
    on_hand: Units
    as_of: Timestamp | None = None
    expected_on_hand: Units | None = None
    safety_stock: Units | None = None
    source: Source = "api"
    source_event_id: EventId | None = None


class AdjustmentIn(Request):
    delta: Annotated[int, Field(strict=True, ge=-1_000_000, le=1_000_000), Integral]
    reason: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$", examples=["sale"])]
    source: Source
    source_event_id: EventId
    occurred_at: Timestamp | None = None
    supply_id: SupplyId | None = Field(
        default=None, description="a receipt of this incoming supply: a positive delta consumes it"
    )

    @model_validator(mode="after")
    def _receipt_of_supply(self) -> AdjustmentIn:
        if self.supply_id is not None and self.delta <= 0:
            raise ValueError("supply_id names the supply a receipt delivers: delta must be > 0")
        return self


class ArrivalOut(BaseModel):
    """Units on their way to a position: an incoming supply or a shipped transfer's line."""

    kind: Literal["supply", "transfer"]
    id: str = Field(description="the supply_id or the transfer_id")
    qty: int
    expected_at: datetime | None = Field(description="when they are expected; null: not given")


class PositionOut(BaseModel):
    sku: str
    location_id: str
    on_hand: int
    reserved: int
    safety_stock: int
    available: int
    damaged: int = Field(0, description="owned, not sellable (never in available)")
    quality_control: int = Field(0, description="returned, awaiting inspection")
    in_transit: int = Field(0, description="shipped here by a transfer, not yet received")
    incoming: int = Field(0, description="units of incoming supplies (purchase orders)")
    arrivals: list[ArrivalOut] = Field(
        default_factory=list, description="incoming supplies and transfers, with their times"
    )


class StockChangeOut(PositionOut):
    applied: bool
    replayed: bool
    seq: int
    at_risk_reservations: int


class LocationAvailability(BaseModel):
    location_id: str
    name: str
    kind: str
    pickup: bool
    ship: bool
    on_hand: int
    reserved: int
    safety_stock: int
    available: int
    distance_km: float | None = None
    next_arrival: ArrivalOut | None = Field(
        default=None, description="the earliest arrival with an expected time (null: none)"
    )
    available_by: int | None = Field(
        default=None,
        description="with `by`: available now plus the arrivals expected by then (incoming "
        "supply, transfers in transit); null without `by`",
    )


class AvailabilityOut(BaseModel):
    sku: str
    total_available: int
    locations: list[LocationAvailability]


PoolId = Annotated[str, Field(pattern=POOL_PATTERN, examples=["web-berlin"])]


class LineIn(Request):
    """A line at a location, or from a channel pool (exactly one of ``location_id``, ``pool``):
    the engine then chooses the location(s) by the pool's strategy, atomically with the hold."""

    sku: Sku
    location_id: LocationId | None = None
    pool: PoolId | None = None
    qty: Qty

    @model_validator(mode="after")
    def _one_place(self) -> LineIn:
        if (self.location_id is None) == (self.pool is None):
            raise ValueError("a line names exactly one of location_id and pool")
        return self


class PointIn(Request):
    lat: Annotated[float, Field(strict=True, ge=-GEO_LAT_MAX, le=GEO_LAT_MAX)]
    lon: Annotated[float, Field(strict=True, ge=-GEO_LON_MAX, le=GEO_LON_MAX)]


class ReservationIn(Request):
    reservation_id: Annotated[str, Field(pattern=ID_PATTERN, examples=["cart-7f3a9c"])]
    channel: Annotated[str, Field(pattern=CHANNEL_PATTERN, examples=["web"])]
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)]
    ttl_seconds: TtlSeconds | None = None
    customer_ref: CustomerRef | None = None
    near: PointIn | None = Field(
        default=None, description="the point a pool of strategy nearest sources closest to"
    )
    allow_split: Flag = Field(
        default=False,
        description="a pool line may take its units from several locations (default: one)",
    )


class ConfirmIn(Request):
    pickup_within_seconds: TtlSeconds | None = None


class ExtendIn(Request):
    ttl_seconds: TtlSeconds


class EmptyIn(Request):
    pass


class LineOut(BaseModel):
    sku: str
    location_id: str
    qty: int


class HistoryOut(BaseModel):
    state: str
    at: datetime


class PoolSourceOut(BaseModel):
    sku: str
    pool: str
    location_id: str
    qty: int


class ReservationOut(BaseModel):
    reservation_id: str
    channel: str
    state: str
    lines: list[LineOut]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    customer_ref: str | None
    at_risk: bool
    history: list[HistoryOut]
    hold_code: str | None = Field(
        description="short code for the customer and the till, e.g. K7M-Q2PX", examples=["K7M-Q2PX"]
    )
    pool_sources: list[PoolSourceOut] = Field(
        default_factory=list,
        description="where the pool lines' units were taken when the reservation was made "
        "(the lines above say where they are held now)",
    )
    returned_units: dict[str, int] = Field(
        default_factory=dict, description="units of each SKU returned so far (once fulfilled)"
    )
    return_ids: list[str] = Field(default_factory=list, description="its returns, oldest first")


class ReservationList(BaseModel):
    reservations: list[ReservationOut]


class ErasureOut(BaseModel):
    """What a GDPR erasure removed; stock, states and movements stay."""

    customer_ref: str
    redis_reservations: int = Field(description="reservations in Redis that carried it")
    ledger_reservations: int = Field(description="ledger reservations that carried it")


class PickupList(BaseModel):
    location_id: str
    pickups: list[ReservationOut]


class MoveIn(Request):
    from_location_id: LocationId
    to_location_id: LocationId


LocationPath = Annotated[str, Path(pattern=LOCATION_PATTERN)]
SkuPath = Annotated[str, Path(pattern=SKU_PATTERN)]
HoldCodePath = Annotated[str, Path(pattern=HOLD_CODE_PATTERN, examples=["K7M-Q2PX"])]
ReservationIdPath = Annotated[str, Path(pattern=ID_PATTERN)]
CustomerRefPath = Annotated[str, Path(pattern=CUSTOMER_REF_PATTERN)]


class MovementOut(BaseModel):
    seq: int
    kind: str
    qty: int | None
    d_on_hand: int
    d_reserved: int
    d_damaged: int = Field(0, description="change of damaged (bucket events)")
    d_quality_control: int = Field(0, description="change of quality_control (bucket events)")
    d_in_transit: int = Field(0, description="change of in_transit (bucket events)")
    on_hand: int | None
    reserved: int | None
    damaged: int | None = Field(None, description="damaged after the event (bucket events)")
    quality_control: int | None = Field(
        None, description="quality_control after the event (bucket events)"
    )
    in_transit: int | None = Field(None, description="in_transit after the event (bucket events)")
    reservation_id: str | None
    channel: str | None
    source: str | None
    source_event_id: str | None
    reason: str | None
    occurred_at: datetime
    recorded_at: datetime
    details: dict[str, str] = Field(
        default_factory=dict,
        description="what a bucket or supply event names, when it does: from, to (buckets of a "
        "move, locations of a transfer), xfer (transfer id), ret (return id), disp "
        "(disposition), supply (supply id), exp (expected at, ms), prev, left, by, shipped",
        examples=[{"from": "quality_control", "to": "on_hand"}],
    )


class MovementPage(BaseModel):
    sku: str
    location_id: str
    movements: list[MovementOut]
    next_before_seq: int | None = Field(description="pass as before_seq for the next page")
