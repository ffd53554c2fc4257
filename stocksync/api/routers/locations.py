"""Locations: stores and warehouses."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from stocksync.api.convert import location_out
from stocksync.api.deps import Admin, Reader, services
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.schemas import LocationIn, LocationList, LocationOut, LocationPath
from stocksync.api.strict_json import StrictJsonRoute
from stocksync.domain.model import Location

router = APIRouter(
    prefix="/v1/locations",
    tags=["locations"],
    responses=PROBLEM_RESPONSES,
    route_class=StrictJsonRoute,
)


@router.put(
    "/{location_id}",
    response_model=LocationOut,
    responses={201: {"model": LocationOut, "description": "Created"}},
)
async def put_location(
    location_id: LocationPath,
    body: LocationIn,
    principal: Admin,
    request: Request,
    response: Response,
) -> LocationOut:
    """Create or update a location (201 when created)."""
    principal.require_locations([location_id])
    location = Location(location_id=location_id, **body.model_dump())
    if await services(request).store.upsert_location(location):
        response.status_code = 201
    return location_out(location)


@router.get("", response_model=LocationList)
async def list_locations(principal: Reader, request: Request) -> LocationList:
    """Every location this key may see."""
    locations = await services(request).store.list_locations()
    if principal.locations is not None:
        locations = [loc for loc in locations if loc.location_id in principal.locations]
    return LocationList(locations=[location_out(loc) for loc in locations])
