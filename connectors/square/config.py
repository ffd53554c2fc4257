"""The ``[square]`` table of the connectors config file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from connectors.framework.config import ConnectorConfig, IdMap, Secret
from connectors.square.mapping import BucketRules
from stocksync.domain.model import Disposition

DEFAULT_RESERVATION_PREFIX = "stocksync:"


# Where units Square wastes go: kept as damaged (a unit found damaged, to be inspected or
# written off in stocksync later) or written off at once.
WasteBucket = Literal["damaged", "written_off"]


class SquareReturns(BaseModel):
    """``[square.returns]``: what a till return the cashier restocked becomes."""

    model_config = ConfigDict(extra="forbid")

    disposition: Disposition = Field(
        default=Disposition.INSPECT,
        description="restock (on_hand), inspect (quality_control) or damaged",
    )


class SquareWaste(BaseModel):
    """``[square.waste]``: where IN_STOCK -> WASTE units go, by the adjustment's reason."""

    model_config = ConfigDict(extra="forbid")

    to: WasteBucket = Field(default="written_off", description="units wasted for any reason")
    damaged_to: WasteBucket = Field(
        default="damaged", description="units wasted with the reason DAMAGED"
    )


class SquareConfig(ConnectorConfig):
    """Where Square is, how to authenticate, how often to poll, and how ids map."""

    base_url: HttpUrl = HttpUrl("https://connect.squareup.com")
    access_token: Secret = Field(description='bearer token; "env:NAME" reads it from NAME')
    square_version: str = Field(default="2024-12-18", pattern=r"^\d{4}-\d{2}-\d{2}$")
    mapping_file: Path = Field(description="TOML: [skus] catalog object id -> SKU, [locations]")
    location_ids: list[str] = Field(
        default_factory=list,
        description="Square locations to poll; empty: every location in the mapping file",
    )
    poll_interval_seconds: float = Field(default=15.0, gt=0, le=3600)
    page_limit: int = Field(default=100, ge=1, le=1000)
    overlap_seconds: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="each sweep starts this long before the newest created_at seen, to catch "
        "changes Square indexes late (re-applied changes are duplicates, harmless)",
    )
    start_at: str = Field(
        default="1970-01-01T00:00:00Z",
        description="RFC 3339 watermark of the very first sweep (no checkpoint yet)",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    reservation_prefix: str = Field(
        default=DEFAULT_RESERVATION_PREFIX,
        min_length=1,
        max_length=64,
        description="an adjustment whose reference_id starts with this names a reservation",
    )
    hold_codes_from_orders: bool = Field(
        default=True,
        description="read the order behind each till sale (BatchRetrieveOrders; the token "
        "needs ORDERS_READ) for a hold code in a line item note or the order's reference_id",
    )
    signature_key: Secret | None = Field(
        default=None, description="webhook subscription's signature key (None: no webhooks)"
    )
    notification_url: str | None = Field(
        default=None, description="the exact URL Square posts webhooks to (it is signed)"
    )
    returns: SquareReturns = SquareReturns()
    waste: SquareWaste = SquareWaste()

    @field_validator("start_at")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        if datetime.fromisoformat(value).tzinfo is None:
            raise ValueError("start_at needs a UTC offset (e.g. 2024-01-01T00:00:00Z)")
        return value

    def bucket_rules(self) -> BucketRules:
        return BucketRules(self.returns.disposition, self.waste.to, self.waste.damaged_to)

    def id_map(self) -> IdMap:
        return IdMap.load(self.mapping_file)

    def polled_locations(self, ids: IdMap) -> list[str]:
        return list(self.location_ids) or sorted(ids.locations)
