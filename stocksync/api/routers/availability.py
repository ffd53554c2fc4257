"""Availability of a SKU across locations, nearest first when a point is given, or through a
channel pool (``pool``: what it offers, per location; see stocksync.api.routers.pools)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter

from stocksync.api.convert import arrival_out, to_ms
from stocksync.api.deps import Reader, Services, services
from stocksync.api.lean import LeanRequest, LeanResponse, LeanRoute
from stocksync.api.pool_schemas import PoolAvailabilityOut, PoolQuery
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.routers.pools import pool_availability
from stocksync.api.schemas import AvailabilityOut, LocationAvailability, Timestamp
from stocksync.auth.principal import Principal
from stocksync.domain.geo import parse_point
from stocksync.domain.model import CHANNEL_PATTERN, SKU_PATTERN, Location, Position
from stocksync.domain.transfers import MAX_AVAILABLE_BY_DAYS
from stocksync.store.pickups import PickupOps

router = APIRouter(prefix="/v1/availability", tags=["availability"], responses=PROBLEM_RESPONSES)

# Online channels sell only from locations allowed to ship.
ONLINE_CHANNELS = frozenset({"web", "app", "marketplace"})
POINT_PATTERN = r"^-?\d{1,3}(\.\d{1,10})?,-?\d{1,3}(\.\d{1,10})?$"


SkuQuery = Annotated[str, Query(pattern=SKU_PATTERN)]
NearQuery = Annotated[str | None, Query(pattern=POINT_PATTERN, description="lat,lon")]
RadiusQuery = Annotated[
    float | None, Query(gt=0, le=20_000, description="with `near`; default 50 km")
]
ChannelQuery = Annotated[str | None, Query(pattern=CHANNEL_PATTERN)]
PickupQuery = Annotated[bool | None, Query(description="only pickup-enabled stores")]
ByQuery = Annotated[
    Timestamp | None,
    Query(
        description="a time at most 366 days ahead: each location's `available_by` then "
        "(available now plus incoming supply and transfers expected by then)"
    ),
]


@router.get("", response_model=AvailabilityOut | PoolAvailabilityOut)
async def get_availability(
    principal: Reader,
    request: Request,
    sku: SkuQuery,
    near: NearQuery = None,
    radius_km: RadiusQuery = None,
    channel: ChannelQuery = None,
    pickup: PickupQuery = None,
    pool: PoolQuery = None,
    by: ByQuery = None,
) -> AvailabilityOut | PoolAvailabilityOut:
    """Per-location availability and the total (safety stock held back, clamped at zero).

    With ``near``: only locations within ``radius_km`` (Redis GEOSEARCH), nearest first, each
    with ``distance_km``. With ``pool`` (and none of the others): what the channel pool offers
    of the SKU, ``{sku, pool, available, locations: [{location_id, available, buffer,
    offered}]}``, in one script call whatever the pool's size.

    Each location shows its ``next_arrival`` (the earliest incoming supply or transfer with an
    expected time); with ``by``, also ``available_by``: what can be promised at that time.
    """
    svc = services(request)
    if pool is not None:
        _pool_alone(near, radius_km, channel, pickup, by)
        return await pool_availability(svc, principal, sku, pool)
    by_ms = _by_ms(by)
    return await _availability(svc, principal, sku, near, radius_km, channel, pickup, by_ms)


def _pool_alone(
    near: str | None,
    radius_km: float | None,
    channel: str | None,
    pickup: bool | None,
    by: datetime | None,
) -> None:
    """A pool read takes no location filter (the pool says which locations count), nor a
    time (it offers what is available now)."""
    given = {"near": near, "radius_km": radius_km, "channel": channel, "pickup": pickup, "by": by}
    errors = [
        {
            "loc": ("query", name),
            "msg": f"{name} does not apply to a pool read",
            "type": "value_error",
        }
        for name, value in given.items()
        if value is not None
    ]
    if errors:
        raise RequestValidationError(errors)


async def _availability(
    svc: Services,
    principal: Principal,
    sku: str,
    near: str | None,
    radius_km: float | None,
    channel: str | None,
    pickup: bool | None,
    by_ms: int | None,
) -> AvailabilityOut:
    point = _point(near)
    found: list[tuple[Position, Location, float | None]]
    if point is None:
        found = [(p, loc, None) for p, loc in await svc.store.positions(sku)]
    else:
        radius = radius_km if radius_km is not None else svc.settings.nearby_radius_km
        nearby = await PickupOps(svc.store).nearby(
            sku, point[0], point[1], radius, pickup_only=bool(pickup)
        )
        found = [(n.position, n.location, n.distance_km) for n in nearby]
    rows: list[LocationAvailability] = []
    for position, location, distance in found:
        if principal.locations is not None and location.location_id not in principal.locations:
            continue
        if pickup and not location.pickup:
            continue
        if channel in ONLINE_CHANNELS and not location.ship:
            continue
        arrival = position.next_arrival()
        rows.append(
            LocationAvailability(
                location_id=location.location_id,
                name=location.name,
                kind=location.kind,
                pickup=location.pickup,
                ship=location.ship,
                on_hand=position.on_hand,
                reserved=position.reserved,
                safety_stock=position.safety_stock,
                available=position.available,
                distance_km=distance,
                next_arrival=None if arrival is None else arrival_out(arrival),
                available_by=None if by_ms is None else position.available_by(by_ms),
            )
        )
    # GEOSEARCH ... ASC gave them nearest first; the sort only settles ties deterministically.
    rows.sort(key=lambda r: (r.distance_km or 0.0, r.location_id))
    return AvailabilityOut(sku=sku, total_available=sum(r.available for r in rows), locations=rows)


_SKU = TypeAdapter(SkuQuery)
_NEAR = TypeAdapter(NearQuery)
_RADIUS = TypeAdapter(RadiusQuery)
_CHANNEL = TypeAdapter(ChannelQuery)
_PICKUP = TypeAdapter(PickupQuery)
_POOL = TypeAdapter(PoolQuery)
_BY = TypeAdapter(ByQuery)
_OUT = TypeAdapter(AvailabilityOut)
_POOL_OUT = TypeAdapter(PoolAvailabilityOut)


async def lean_get_availability(req: LeanRequest) -> LeanResponse:
    """GET /v1/availability on the lean path (stocksync.api.lean)."""
    principal = await req.principal("read")
    sku = req.query("sku", _SKU)
    near = req.query("near", _NEAR, None)
    radius_km = req.query("radius_km", _RADIUS, None)
    channel = req.query("channel", _CHANNEL, None)
    pickup = req.query("pickup", _PICKUP, None)
    pool = req.query("pool", _POOL, None)
    by = req.query("by", _BY, None)
    req.raise_errors()
    if pool is not None:
        _pool_alone(near, radius_km, channel, pickup, by)
        read = await pool_availability(req.services, principal, sku, pool)
        return LeanResponse(200, _POOL_OUT.dump_json(read))
    by_ms = _by_ms(by)
    out = await _availability(req.services, principal, sku, near, radius_km, channel, pickup, by_ms)
    return LeanResponse(200, _OUT.dump_json(out))


LEAN_ROUTES = (LeanRoute("GET", router.prefix, lean_get_availability),)


def _by_ms(by: datetime | None) -> int | None:
    """``by`` in ms, refused beyond MAX_AVAILABLE_BY_DAYS ahead (a bound on input, so the
    API host's clock is good enough: no state depends on it)."""
    if by is None:
        return None
    if by > datetime.now(UTC) + timedelta(days=MAX_AVAILABLE_BY_DAYS):
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "by"),
                    "msg": f"by is at most {MAX_AVAILABLE_BY_DAYS} days ahead",
                    "type": "value_error",
                }
            ]
        )
    return to_ms(by)


def _point(near: str | None) -> tuple[float, float] | None:
    if near is None:
        return None
    try:
        return parse_point(near)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("query", "near"), "msg": str(exc), "type": "value_error"}]
        ) from exc
