"""The inspection queue: a location's positions with units in quality_control."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from stocksync.api.convert import position_out
from stocksync.api.deps import Reader, services
from stocksync.api.inspection_schemas import QUEUE_LIMIT_MAX, BucketPositionsOut, WaitingOut
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.schemas import LocationPath
from stocksync.domain.clock import ms_to_datetime

router = APIRouter(prefix="/v1/stock", tags=["stock"], responses=PROBLEM_RESPONSES)


@router.get("/{location_id}", response_model=BucketPositionsOut)
async def list_bucket_positions(
    location_id: LocationPath,
    principal: Reader,
    request: Request,
    bucket: Annotated[
        Literal["quality_control"],
        Query(description="the bucket to list; quality_control: returned units to inspect"),
    ],
    limit: Annotated[int, Query(ge=1, le=QUEUE_LIMIT_MAX)] = 100,
) -> BucketPositionsOut:
    """The location's positions with units in ``bucket``, longest waiting first (the store
    page's inspection queue): each position with every bucket, and ``since``."""
    principal.require_locations([location_id])
    queue = await services(request).store.inspection_queue(location_id, limit=limit)
    positions = [
        WaitingOut(**position_out(w.position).model_dump(), since=ms_to_datetime(w.since_ms))
        for w in queue.positions
    ]
    return BucketPositionsOut(
        location_id=location_id, bucket=bucket, waiting=queue.waiting, positions=positions
    )
