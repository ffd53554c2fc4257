"""Channel pools (online stock): configuration, and what a pool offers, per SKU or in bulk.

A pool's reads are one script call whatever its size (``pool_availability.lua``). A key bound
to locations sees a pool only when it is bound to every location of the pool (a pool's number
is a sum over all of them); its lists leave out the pools it may not see.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import TypeAdapter

from stocksync.api.deps import Admin, Reader, Services, services
from stocksync.api.lean import LeanRequest, LeanResponse, LeanRoute
from stocksync.api.pool_schemas import (
    BatchAvailabilityIn,
    BatchAvailabilityOut,
    PoolAvailabilityOut,
    PoolIn,
    PoolList,
    PoolLocationAvailabilityOut,
    PoolLocationOut,
    PoolOut,
    PoolPath,
)
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.strict_json import StrictJsonRoute
from stocksync.auth.principal import Principal
from stocksync.domain.errors import NotFound
from stocksync.domain.model import Pool, PoolLocation

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES, route_class=StrictJsonRoute)
BATCH_PATH = "/v1/availability/batch"


def pool_out(pool: Pool) -> PoolOut:
    return PoolOut(
        pool_id=pool.pool_id,
        name=pool.name,
        channels=list(pool.channels),
        strategy=pool.strategy,
        locations=[PoolLocationOut(**entry.__dict__) for entry in pool.locations],
        domain=pool.domain,
    )


def _visible(principal: Principal, pool: Pool) -> bool:
    return principal.locations is None or all(
        entry.location_id in principal.locations for entry in pool.locations
    )


@router.put(
    "/pools/{pool_id}",
    tags=["pools"],
    response_model=PoolOut,
    responses={201: {"model": PoolOut, "description": "Created"}},
)
async def put_pool(
    pool_id: PoolPath, body: PoolIn, principal: Admin, request: Request, response: Response
) -> PoolOut:
    """Create or replace a pool (201 when created). Its locations must exist and be in one
    stock domain (409 ``cross_domain``); a pool keeps the domain it was created in (409
    ``domain_change``); channels are the configured ones. Nothing is changed on a refusal."""
    principal.require_locations(entry.location_id for entry in body.locations)
    pool = Pool(
        pool_id=pool_id,
        name=body.name,
        channels=tuple(body.channels),
        strategy=body.strategy,
        locations=tuple(PoolLocation(**entry.model_dump()) for entry in body.locations),
    )
    store = services(request).store
    if await store.upsert_pool(pool):
        response.status_code = 201
    stored = await store.get_pool(pool_id)
    return pool_out(stored or pool)


@router.get("/pools", tags=["pools"], response_model=PoolList)
async def list_pools(principal: Reader, request: Request) -> PoolList:
    """Every pool of every stock domain this key may see."""
    pools = await services(request).store.list_pools()
    return PoolList(pools=[pool_out(p) for p in pools if _visible(principal, p)])


@router.get("/pools/{pool_id}", tags=["pools"], response_model=PoolOut)
async def get_pool(pool_id: PoolPath, principal: Reader, request: Request) -> PoolOut:
    """One pool (404 when there is none of that id)."""
    pool = await services(request).store.get_pool(pool_id)
    if pool is None:
        raise NotFound(f"pool {pool_id!r} not found", resource="pool")
    principal.require_locations(entry.location_id for entry in pool.locations)
    return pool_out(pool)


async def pool_availability(
    svc: Services, principal: Principal, sku: str, pool_id: str
) -> PoolAvailabilityOut:
    """``GET /v1/availability?sku=…&pool=…`` (both paths): one script call."""
    read = await svc.store.pool_availability(sku, pool_id)
    principal.require_locations(row.location_id for row in read.locations)
    return PoolAvailabilityOut(
        sku=sku,
        pool=pool_id,
        available=read.available,
        locations=[PoolLocationAvailabilityOut(**row.__dict__) for row in read.locations],
    )


@router.post(
    "/availability/batch",
    tags=["availability"],
    response_model=BatchAvailabilityOut,
    response_model_exclude_none=True,
)
async def batch_availability(
    body: BatchAvailabilityIn, principal: Reader, request: Request
) -> BatchAvailabilityOut:
    """One number per SKU (a listing page), in one script call: for a pool what it offers
    (the sum over its locations of max(0, available - buffer)), for a location its
    availability (clamped at zero)."""
    return await _batch(services(request), principal, body)


async def _batch(
    svc: Services, principal: Principal, body: BatchAvailabilityIn
) -> BatchAvailabilityOut:
    store = svc.store
    if body.location_id is not None:
        principal.require_locations([body.location_id])
        found = await store.location_availability_many(body.location_id, body.skus)
        return BatchAvailabilityOut(location_id=body.location_id, availability=found)
    assert body.pool is not None  # the model's validator: exactly one of them
    if principal.locations is not None:  # a bound key: may it see every location of the pool?
        pool = await store.get_pool(body.pool)
        if pool is None:
            raise NotFound(f"pool {body.pool!r} not found", resource="pool")
        principal.require_locations(entry.location_id for entry in pool.locations)
    found = await store.pool_availability_many(body.pool, body.skus)
    return BatchAvailabilityOut(pool=body.pool, availability=found)


# -- the lean path (stocksync.api.lean) -----------------------------------------------------

_BATCH_IN = TypeAdapter(BatchAvailabilityIn)
_BATCH_OUT = TypeAdapter(BatchAvailabilityOut)


async def lean_batch_availability(req: LeanRequest) -> LeanResponse:
    """POST /v1/availability/batch on the lean path."""
    raw = await req.read_body()
    principal = await req.principal("read")
    body = req.body(raw, _BATCH_IN, required=True)
    req.raise_errors()
    out = await _batch(req.services, principal, body)
    return LeanResponse(200, _BATCH_OUT.dump_json(out, exclude_none=True))


LEAN_ROUTES = (LeanRoute("POST", BATCH_PATH, lean_batch_availability),)
