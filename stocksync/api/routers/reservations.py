"""Reservations: holds with a TTL, and their transitions."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.exceptions import RequestValidationError

from stocksync.api.convert import reservation_out
from stocksync.api.deps import MetricsDep, Reader, Reserver, SettingsDep, StoreDep
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.schemas import (
    ConfirmIn,
    EmptyIn,
    ExtendIn,
    ReservationIdPath,
    ReservationIn,
    ReservationOut,
)
from stocksync.auth.principal import Principal
from stocksync.config import Settings
from stocksync.domain.errors import NotFound, StockSyncError
from stocksync.domain.model import Line
from stocksync.metrics import Metrics, channel_label
from stocksync.store.redis_store import RedisStockStore, TransitionResult

router = APIRouter(prefix="/v1/reservations", tags=["reservations"], responses=PROBLEM_RESPONSES)


def _ttl(settings: Settings, ttl: int | None) -> int:
    if ttl is None:
        return settings.default_ttl_seconds
    if ttl > settings.max_ttl_seconds:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "ttl_seconds"),
                    "type": "less_than_equal",
                    "msg": f"ttl_seconds must be at most {settings.max_ttl_seconds}",
                }
            ]
        )
    return ttl


@router.post("", response_model=ReservationOut, status_code=201)
async def create_reservation(
    body: ReservationIn,
    store: StoreDep,
    principal: Reserver,
    settings: SettingsDep,
    metrics: MetricsDep,
    response: Response,
) -> ReservationOut:
    """Hold every line or nothing. A retry with the same id and body returns 200 and the same
    reservation; the same id with another body is ``409 idempotency_conflict``."""
    principal.require_locations(line.location_id for line in body.lines)
    ttl = _ttl(settings, body.ttl_seconds)
    lines = [Line(ln.sku, ln.location_id, ln.qty) for ln in body.lines]
    channel = channel_label(body.channel)
    try:
        result = await store.reserve(
            body.reservation_id, body.channel, lines, ttl, body.customer_ref
        )
    except StockSyncError as exc:
        metrics.reservations.labels(channel, exc.code).inc()
        raise
    if not result.created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    metrics.reservations.labels(channel, "held" if result.created else "replayed").inc()
    return reservation_out(result.reservation)


async def _authorize(store: RedisStockStore, principal: Principal, reservation_id: str) -> None:
    if principal.locations is None:
        return
    locations = await store.reservation_locations(reservation_id)
    if locations is None:
        raise NotFound(f"reservation {reservation_id!r} not found", resource="reservation")
    principal.require_locations(locations)


@router.get("/{reservation_id}", response_model=ReservationOut)
async def get_reservation(
    reservation_id: ReservationIdPath, store: StoreDep, principal: Reader
) -> ReservationOut:
    """A reservation with its state, lines and transition history."""
    await _authorize(store, principal, reservation_id)
    return reservation_out(await store.get_reservation(reservation_id))


async def _transition(
    action: str,
    reservation_id: str,
    store: RedisStockStore,
    principal: Principal,
    metrics: Metrics,
    response: Response,
    *args: int | None,
) -> ReservationOut:
    await _authorize(store, principal, reservation_id)
    method = getattr(store, action)
    try:
        result: TransitionResult = await method(reservation_id, *args)
    except StockSyncError as exc:
        metrics.transitions.labels(action, exc.code).inc()
        raise
    metrics.transitions.labels(action, "repeated" if result.repeated else "ok").inc()
    if result.repeated:
        response.headers["Idempotent-Replayed"] = "true"
    return reservation_out(result.reservation)


@router.post("/{reservation_id}/confirm", response_model=ReservationOut)
async def confirm(
    reservation_id: ReservationIdPath,
    store: StoreDep,
    principal: Reserver,
    metrics: MetricsDep,
    response: Response,
    settings: SettingsDep,
    body: ConfirmIn | None = None,
) -> ReservationOut:
    """held → confirmed (an order was placed); optional pickup deadline."""
    pickup = (
        None
        if body is None or body.pickup_within_seconds is None
        else _ttl(settings, body.pickup_within_seconds)
    )
    return await _transition("confirm", reservation_id, store, principal, metrics, response, pickup)


@router.post("/{reservation_id}/ready", response_model=ReservationOut)
async def ready(
    reservation_id: ReservationIdPath,
    store: StoreDep,
    principal: Reserver,
    metrics: MetricsDep,
    response: Response,
    body: EmptyIn | None = None,
) -> ReservationOut:
    """confirmed → ready (picked and set aside for collection)."""
    return await _transition("ready", reservation_id, store, principal, metrics, response)


@router.post("/{reservation_id}/fulfill", response_model=ReservationOut)
async def fulfill(
    reservation_id: ReservationIdPath,
    store: StoreDep,
    principal: Reserver,
    metrics: MetricsDep,
    response: Response,
    body: EmptyIn | None = None,
) -> ReservationOut:
    """held | confirmed | ready → fulfilled: the units leave stock."""
    return await _transition("fulfill", reservation_id, store, principal, metrics, response)


@router.post("/{reservation_id}/release", response_model=ReservationOut)
async def release(
    reservation_id: ReservationIdPath,
    store: StoreDep,
    principal: Reserver,
    metrics: MetricsDep,
    response: Response,
    body: EmptyIn | None = None,
) -> ReservationOut:
    """held | confirmed | ready → released: the units return to available stock."""
    return await _transition("release", reservation_id, store, principal, metrics, response)


@router.post("/{reservation_id}/extend", response_model=ReservationOut)
async def extend(
    reservation_id: ReservationIdPath,
    body: ExtendIn,
    store: StoreDep,
    principal: Reserver,
    metrics: MetricsDep,
    response: Response,
    settings: SettingsDep,
) -> ReservationOut:
    """Move the deadline of an active reservation to now + ttl_seconds."""
    ttl = _ttl(settings, body.ttl_seconds)
    return await _transition("extend", reservation_id, store, principal, metrics, response, ttl)
