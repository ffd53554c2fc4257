"""Availability of a SKU across locations, nearest first when a point is given, or through a
channel pool (``pool``: what it offers, per location; see stocksync.api.routers.pools)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter

from stocksync.api.deps import Reader, Services, services
from stocksync.api.lean import LeanRequest, LeanResponse, LeanRoute
from stocksync.api.pool_schemas import PoolAvailabilityOut, PoolQuery
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.routers.pools import pool_availability
from stocksync.api.schemas import AvailabilityOut, LocationAvailability
from stocksync.auth.principal import Principal
from stocksync.domain.geo import parse_point
from stocksync.domain.model import CHANNEL_PATTERN, SKU_PATTERN, Location, Position
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
) -> AvailabilityOut | PoolAvailabilityOut:
    """Per-location availability and the total (safety stock held back, clamped at zero).

    With ``near``: only locations within ``radius_km`` (Redis GEOSEARCH), nearest first, each
    with ``distance_km``. With ``pool`` (and none of the others): what the channel pool offers
    of the SKU, ``{sku, pool, available, locations: [{location_id, available, buffer,
    offered}]}``, in one script call whatever the pool's size.
    """
    svc = services(request)
    if pool is not None:
        _pool_alone(near, radius_km, channel, pickup)
        return await pool_availability(svc, principal, sku, pool)
    return await _availability(svc, principal, sku, near, radius_km, channel, pickup)


def _pool_alone(
    near: str | None, radius_km: float | None, channel: str | None, pickup: bool | None
) -> None:
    """A pool read takes no location filter: the pool says which locations count."""
    given = {"near": near, "radius_km": radius_km, "channel": channel, "pickup": pickup}
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
    req.raise_errors()
    if pool is not None:
        _pool_alone(near, radius_km, channel, pickup)
        read = await pool_availability(req.services, principal, sku, pool)
        return LeanResponse(200, _POOL_OUT.dump_json(read))
    out = await _availability(req.services, principal, sku, near, radius_km, channel, pickup)
    return LeanResponse(200, _OUT.dump_json(out))


LEAN_ROUTES = (LeanRoute("GET", router.prefix, lean_get_availability),)


def _point(near: str | None) -> tuple[float, float] | None:
    if near is None:
        return None
    try:
        return parse_point(near)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("query", "near"), "msg": str(exc), "type": "value_error"}]
        ) from exc
