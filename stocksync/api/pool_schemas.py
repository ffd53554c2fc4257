"""Bodies of the channel pool routes: a pool's configuration, its reads and batch reads.

Requests are strict, bounded and refuse unknown fields, as every request of the API. Rules a
JSON Schema cannot state (a location listed twice, exactly one of ``pool`` and
``location_id``, SKUs each once) are model validators: they answer 422 like the schema's.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from fastapi import Path, Query
from pydantic import BaseModel, Field, model_validator

from stocksync.api.schemas import Integral, LocationId, Request, Sku
from stocksync.domain.model import (
    CHANNEL_PATTERN,
    MAX_BATCH_SKUS,
    MAX_POOL_BUFFER,
    MAX_POOL_LOCATIONS,
    MAX_POOL_PRIORITY,
    POOL_PATTERN,
)

PoolId = Annotated[str, Field(pattern=POOL_PATTERN, examples=["web-berlin"])]
PoolPath = Annotated[str, Path(pattern=POOL_PATTERN, examples=["web-berlin"])]
PoolQuery = Annotated[
    str | None,
    Query(pattern=POOL_PATTERN, description="a channel pool: what it offers, per location"),
]
Strategy = Literal["priority", "nearest", "most_available", "fewest_splits"]
Channel = Annotated[str, Field(pattern=CHANNEL_PATTERN, examples=["web"])]


class PoolLocationIn(Request):
    location_id: LocationId
    priority: Annotated[
        int,
        Field(strict=True, ge=0, le=MAX_POOL_PRIORITY, description="lowest is sourced first"),
        Integral,
    ] = 0
    buffer: Annotated[
        int,
        Field(
            strict=True,
            ge=0,
            le=MAX_POOL_BUFFER,
            description="units of each SKU kept back for the store: never offered by the pool",
        ),
        Integral,
    ] = 0


class PoolIn(Request):
    name: Annotated[str, Field(min_length=1, max_length=100, examples=["Web shop Berlin"])]
    channels: Annotated[
        list[Channel],
        Field(min_length=1, max_length=32, description="configured channels, each once"),
    ]
    strategy: Strategy = "priority"
    locations: Annotated[
        list[PoolLocationIn],
        Field(min_length=1, max_length=MAX_POOL_LOCATIONS, description="each location once"),
    ]

    @model_validator(mode="after")
    def _each_once(self) -> Self:
        ids = [entry.location_id for entry in self.locations]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"location(s) listed more than once: {', '.join(repeated)}")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("a channel is listed more than once")
        return self


class PoolLocationOut(BaseModel):
    location_id: str
    priority: int
    buffer: int


class PoolOut(BaseModel):
    pool_id: str
    name: str
    channels: list[str]
    strategy: str
    locations: list[PoolLocationOut]
    domain: str


class PoolList(BaseModel):
    pools: list[PoolOut]


class PoolLocationAvailabilityOut(BaseModel):
    location_id: str
    available: int = Field(description="the location's availability (clamped at zero)")
    buffer: int
    offered: int = Field(description="max(0, available - buffer): what the pool sells from it")


class PoolAvailabilityOut(BaseModel):
    sku: str
    pool: str
    available: int = Field(description="what the pool offers: the sum of `offered`")
    locations: list[PoolLocationAvailabilityOut]


class BatchAvailabilityIn(Request):
    pool: PoolId | None = None
    location_id: LocationId | None = None
    skus: Annotated[list[Sku], Field(min_length=1, max_length=MAX_BATCH_SKUS)]

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.pool is None) == (self.location_id is None):
            raise ValueError("give exactly one of pool and location_id")
        if len(set(self.skus)) != len(self.skus):
            raise ValueError("a SKU is listed more than once")
        return self


class BatchAvailabilityOut(BaseModel):
    pool: str | None = Field(default=None, description="when the request named a pool")
    location_id: str | None = Field(default=None, description="when it named a location")
    availability: dict[str, int] = Field(description="SKU -> units, in the request's order")
