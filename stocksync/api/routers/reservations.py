"""Reservations: holds with a TTL, and their transitions."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter

from stocksync.api.convert import reservation_out
from stocksync.api.deps import Reader, Reserver, Services, services
from stocksync.api.lean import REPLAYED_HEADER, Handler, LeanRequest, LeanResponse, LeanRoute
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
from stocksync.domain.errors import Forbidden, StockSyncError
from stocksync.domain.model import Line, PoolLine
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
    out, created = await _create(services(request), principal, body)
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return out


async def _create(
    svc: Services, principal: Principal, body: ReservationIn
) -> tuple[ReservationOut, bool]:
    """The reservation and whether it was created (else replayed)."""
    lines = _lines(principal, body)
    _known_channel(svc.settings, body.channel)
    ttl = _ttl(svc.settings, body.channel, body.ttl_seconds)
    outcomes = svc.metrics.reservation_outcomes(channel_label(body.channel))
    try:
        result = await svc.store.reserve(
            body.reservation_id,
            body.channel,
            lines,
            ttl,
            body.customer_ref,
            key_id=principal.key_id,
            near=None if body.near is None else (body.near.lat, body.near.lon),
            allow_split=body.allow_split,
        )
    except StockSyncError as exc:
        outcomes[exc.code].inc()
        raise
    outcomes["held" if result.created else "replayed"].inc()
    return reservation_out(result.reservation), result.created


def _lines(principal: Principal, body: ReservationIn) -> list[Line | PoolLine]:
    """The request's lines, each at a location or from a pool. A key bound to locations may
    not reserve from a pool: the locations are chosen inside the reserve call, after any check
    here could see them."""
    lines: list[Line | PoolLine] = []
    for ln in body.lines:
        if ln.pool is not None:
            lines.append(PoolLine(ln.sku, ln.pool, ln.qty))
        else:
            assert ln.location_id is not None  # LineIn names exactly one
            lines.append(Line(ln.sku, ln.location_id, ln.qty))
    principal.require_locations(ln.location_id for ln in lines if isinstance(ln, Line))
    if principal.locations is not None and any(isinstance(ln, PoolLine) for ln in lines):
        raise Forbidden("a key bound to locations may not reserve from a pool")
    return lines


@router.get("/{reservation_id}", response_model=ReservationOut)
async def get_reservation(
    reservation_id: ReservationIdPath, principal: Reader, request: Request
) -> ReservationOut:
    """A reservation with its state, lines and transition history.

    Every reservation route shows a reservation only to the key that created it, to admin keys
    and to keys bound to all of its locations; to any other key it is ``404``."""
    return await read_reservation(services(request), principal, reservation_id)


async def _transition(
    svc: Services, action: str, reservation_id: str, principal: Principal, *args: int | None
) -> tuple[ReservationOut, bool]:
    """The reservation after ``action`` and whether it repeated one already taken."""
    method = getattr(svc.store, action)
    outcomes = svc.metrics.transition_outcomes(action)
    try:
        # The script refuses (404) a reservation this key may not access, in the same call.
        result: TransitionResult = await method(
            reservation_id, *args, access=access_spec(principal)
        )
        if result.sale_events:
            # A sale is acknowledged only after its ledger rows are committed (DESIGN rule 6),
            # in one transaction with the sales that arrived with it (rule 9).
            await svc.sales.commit(result.sale_events)
    except StockSyncError as exc:
        outcomes[exc.code].inc()
        raise
    outcomes["repeated" if result.repeated else "ok"].inc()
    return reservation_out(result.reservation), result.repeated


def _answer(response: Response, done: tuple[ReservationOut, bool]) -> ReservationOut:
    out, repeated = done
    if repeated:
        response.headers["Idempotent-Replayed"] = "true"
    return out


async def _pickup_deadline(
    svc: Services, principal: Principal, reservation_id: str, body: ConfirmIn | None
) -> int | None:
    if body is None or body.pickup_within_seconds is None:
        return None
    channel = await authorize(svc, principal, reservation_id)  # before the TTL policy
    return _ttl(svc.settings, channel, body.pickup_within_seconds, "pickup_within_seconds")


async def _extend_ttl(
    svc: Services, principal: Principal, reservation_id: str, body: ExtendIn
) -> int:
    channel = await authorize(svc, principal, reservation_id)  # before the TTL policy
    return _ttl(svc.settings, channel, body.ttl_seconds)


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
    svc = services(request)
    pickup = await _pickup_deadline(svc, principal, reservation_id, body)
    return _answer(response, await _transition(svc, "confirm", reservation_id, principal, pickup))


def _add_transition_route(action: str, doc: str) -> None:
    """ready, fulfill and release take no parameters; one route shape serves them all."""

    async def endpoint(
        reservation_id: ReservationIdPath,
        principal: Reserver,
        request: Request,
        response: Response,
        body: EmptyIn | None = None,
    ) -> ReservationOut:
        done = await _transition(services(request), action, reservation_id, principal)
        return _answer(response, done)

    endpoint.__doc__ = doc
    endpoint.__name__ = action
    router.post(f"/{{reservation_id}}/{action}", response_model=ReservationOut)(endpoint)


SIMPLE_TRANSITIONS = (
    ("ready", "confirmed → ready (picked and set aside for collection)."),
    (
        "fulfill",
        "held | confirmed | ready → fulfilled: the units leave stock. Acknowledged "
        "once the sale is in the ledger.",
    ),
    ("release", "held | confirmed | ready → released: the units return to available stock."),
)
for _action, _doc in SIMPLE_TRANSITIONS:
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
    ttl = await _extend_ttl(svc, principal, reservation_id, body)
    return _answer(response, await _transition(svc, "extend", reservation_id, principal, ttl))


# -- the lean path (stocksync.api.lean): the same routes without FastAPI's machinery -------

_RESERVATION_IN = TypeAdapter(ReservationIn)
_CONFIRM_IN = TypeAdapter(ConfirmIn | None)
_EMPTY_IN = TypeAdapter(EmptyIn | None)
_EXTEND_IN = TypeAdapter(ExtendIn)
_RESERVATION_ID = TypeAdapter(ReservationIdPath)
_OUT = TypeAdapter(ReservationOut)


def _lean_answer(done: tuple[ReservationOut, bool], status: int = 200) -> LeanResponse:
    out, replayed = done
    if replayed:
        return LeanResponse(200, _OUT.dump_json(out), (REPLAYED_HEADER,))
    return LeanResponse(status, _OUT.dump_json(out))


async def lean_create(req: LeanRequest) -> LeanResponse:
    raw = await req.read_body()
    principal = await req.principal("reserve")
    body = req.body(raw, _RESERVATION_IN, required=True)
    req.raise_errors()
    out, created = await _create(req.services, principal, body)
    return _lean_answer((out, not created), status=201)


async def lean_get(req: LeanRequest) -> LeanResponse:
    principal = await req.principal("read")
    reservation_id = req.path("reservation_id", _RESERVATION_ID)
    req.raise_errors()
    return LeanResponse(
        200, _OUT.dump_json(await read_reservation(req.services, principal, reservation_id))
    )


async def lean_confirm(req: LeanRequest) -> LeanResponse:
    raw = await req.read_body()
    principal = await req.principal("reserve")
    reservation_id = req.path("reservation_id", _RESERVATION_ID)
    body = req.body(raw, _CONFIRM_IN, required=False)
    req.raise_errors()
    pickup = await _pickup_deadline(req.services, principal, reservation_id, body)
    return _lean_answer(
        await _transition(req.services, "confirm", reservation_id, principal, pickup)
    )


def _lean_simple(action: str) -> Handler:
    async def handler(req: LeanRequest) -> LeanResponse:
        raw = await req.read_body()
        principal = await req.principal("reserve")
        reservation_id = req.path("reservation_id", _RESERVATION_ID)
        req.body(raw, _EMPTY_IN, required=False)
        req.raise_errors()
        return _lean_answer(await _transition(req.services, action, reservation_id, principal))

    return handler


async def lean_extend(req: LeanRequest) -> LeanResponse:
    raw = await req.read_body()
    principal = await req.principal("reserve")
    reservation_id = req.path("reservation_id", _RESERVATION_ID)
    body = req.body(raw, _EXTEND_IN, required=True)
    req.raise_errors()
    ttl = await _extend_ttl(req.services, principal, reservation_id, body)
    return _lean_answer(await _transition(req.services, "extend", reservation_id, principal, ttl))


_ONE = f"{router.prefix}/{{reservation_id}}"
LEAN_ROUTES = (
    LeanRoute("POST", router.prefix, lean_create),
    LeanRoute("GET", _ONE, lean_get),
    LeanRoute("POST", f"{_ONE}/confirm", lean_confirm),
    *(
        LeanRoute("POST", f"{_ONE}/{action}", _lean_simple(action))
        for action, _ in SIMPLE_TRANSITIONS
    ),
    LeanRoute("POST", f"{_ONE}/extend", lean_extend),
)
