"""Reservations: holds with a TTL, and their transitions."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError

from stocksync.api.convert import reservation_out
from stocksync.api.deps import Reader, Reserver, services
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.reservation_access import access_spec, authorize, read_reservation
from stocksync.api.schemas import (
    ConfirmIn,
    EmptyIn,
    ExtendIn,
    ReservationIdPath,
    ReservationIn,
    ReservationOut,
)
from stocksync.api.strict_json import StrictJsonRoute
from stocksync.auth.principal import Principal
from stocksync.config import Settings
from stocksync.domain.errors import StockSyncError
from stocksync.domain.model import Line
from stocksync.ledger.write_through import write_through
from stocksync.metrics import channel_label
from stocksync.store.reservations import TransitionResult

router = APIRouter(
    prefix="/v1/reservations",
    tags=["reservations"],
    responses=PROBLEM_RESPONSES,
    route_class=StrictJsonRoute,
)


def _ttl(settings: Settings, channel: str, ttl: int | None, field: str = "ttl_seconds") -> int:
    """The requested TTL within the channel's maximum, or the channel's default."""
    if ttl is None:
        return settings.hold_ttl(channel)
    limit = settings.max_hold_ttl(channel)
    if ttl > limit:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", field),
                    "type": "less_than_equal",
                    "msg": f"{field} must be at most {limit} on channel {channel!r}",
                }
            ]
        )
    return ttl


def _known_channel(settings: Settings, channel: str) -> None:
    """Channels come from the configured list: caps per channel mean nothing if a client can
    name a new channel to escape them."""
    if channel not in settings.channels:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "channel"),
                    "type": "enum",
                    "msg": f"channel must be one of {', '.join(settings.channels)}",
                }
            ]
        )


@router.post(
    "",
    response_model=ReservationOut,
    status_code=201,
    responses={200: {"model": ReservationOut, "description": "Replayed: same id, same body"}},
)
async def create_reservation(
    body: ReservationIn, principal: Reserver, request: Request, response: Response
) -> ReservationOut:
    """Hold every line or nothing.

    A retry with the same id and body returns 200 and the same reservation; the same id with
    another body is ``409 idempotency_conflict``; a line that does not fit is
    ``409 insufficient_stock`` listing every short line, and nothing is reserved.
    """
    principal.require_locations(line.location_id for line in body.lines)
    svc = services(request)
    _known_channel(svc.settings, body.channel)
    ttl = _ttl(svc.settings, body.channel, body.ttl_seconds)
    lines = [Line(ln.sku, ln.location_id, ln.qty) for ln in body.lines]
    channel = channel_label(body.channel)
    try:
        result = await svc.store.reserve(
            body.reservation_id,
            body.channel,
            lines,
            ttl,
            body.customer_ref,
            key_id=principal.key_id,
        )
    except StockSyncError as exc:
        svc.metrics.reservations.labels(channel, exc.code).inc()
        raise
    if not result.created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    svc.metrics.reservations.labels(channel, "held" if result.created else "replayed").inc()
    return reservation_out(result.reservation)


@router.get("/{reservation_id}", response_model=ReservationOut)
async def get_reservation(
    reservation_id: ReservationIdPath, principal: Reader, request: Request
) -> ReservationOut:
    """A reservation with its state, lines and transition history.

    Every reservation route shows a reservation only to the key that created it, to admin keys
    and to keys bound to all of its locations; to any other key it is ``404``."""
    return await read_reservation(services(request), principal, reservation_id)


async def _transition(
    action: str,
    reservation_id: str,
    principal: Principal,
    request: Request,
    response: Response,
    *args: int | None,
) -> ReservationOut:
    svc = services(request)
    method = getattr(svc.store, action)
    try:
        # The script refuses (404) a reservation this key may not access, in the same call.
        result: TransitionResult = await method(
            reservation_id, *args, access=access_spec(principal)
        )
    except StockSyncError as exc:
        svc.metrics.transitions.labels(action, exc.code).inc()
        raise
    if result.sale_events:
        # A sale is acknowledged only after its ledger rows are committed (DESIGN rule 6).
        await write_through(svc.ledger, result.sale_events)
    svc.metrics.transitions.labels(action, "repeated" if result.repeated else "ok").inc()
    if result.repeated:
        response.headers["Idempotent-Replayed"] = "true"
    return reservation_out(result.reservation)


@router.post("/{reservation_id}/confirm", response_model=ReservationOut)
async def confirm(
    reservation_id: ReservationIdPath,
    principal: Reserver,
    request: Request,
    response: Response,
    body: ConfirmIn | None = None,
) -> ReservationOut:
    """held → confirmed (an order was placed); optional pickup deadline.

    The units stay reserved throughout: a chat hold becomes a pickup order in one step.
    """
    pickup = None
    if body is not None and body.pickup_within_seconds is not None:
        svc = services(request)
        channel = await authorize(svc, principal, reservation_id)  # before the TTL policy
        pickup = _ttl(svc.settings, channel, body.pickup_within_seconds, "pickup_within_seconds")
    return await _transition("confirm", reservation_id, principal, request, response, pickup)


def _add_transition_route(action: str, doc: str) -> None:
    """ready, fulfill and release take no parameters; one route shape serves them all."""

    async def endpoint(
        reservation_id: ReservationIdPath,
        principal: Reserver,
        request: Request,
        response: Response,
        body: EmptyIn | None = None,
    ) -> ReservationOut:
        return await _transition(action, reservation_id, principal, request, response)

    endpoint.__doc__ = doc
    endpoint.__name__ = action
    router.post(f"/{{reservation_id}}/{action}", response_model=ReservationOut)(endpoint)


for _action, _doc in (
    ("ready", "confirmed → ready (picked and set aside for collection)."),
    (
        "fulfill",
        "held | confirmed | ready → fulfilled: the units leave stock. Acknowledged "
        "once the sale is in the ledger.",
    ),
    ("release", "held | confirmed | ready → released: the units return to available stock."),
):
    _add_transition_route(_action, _doc)


@router.post("/{reservation_id}/extend", response_model=ReservationOut)
async def extend(
    reservation_id: ReservationIdPath,
    body: ExtendIn,
    principal: Reserver,
    request: Request,
    response: Response,
) -> ReservationOut:
    """Move the deadline of an active reservation to now + ttl_seconds."""
    svc = services(request)
    channel = await authorize(svc, principal, reservation_id)  # before the TTL policy
    ttl = _ttl(svc.settings, channel, body.ttl_seconds)
    return await _transition("extend", reservation_id, principal, request, response, ttl)
