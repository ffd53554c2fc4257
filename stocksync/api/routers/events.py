"""Live events of a store (Server-Sent Events), read from its stock domain's outbox stream.

A location belongs to one stock domain, and all its events are in that domain's stream, so a
store's stream tails that one outbox (on its own connection, to the node serving the domain's
slot on a cluster). Event ids are the stream ids for the ``default`` domain, as before domains
existed, and ``<domain>/<stream id>`` for the others, so a ``Last-Event-ID`` says which stream
it belongs to: after a location moved to another domain (an offline operation) a cursor of the
old domain's stream resumes from the start of the new domain's stream (filtered by location,
as always) instead of a position in a stream it never came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable
from time import monotonic, time_ns
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.types import Receive, Scope, Send

from stocksync.api.deps import Reader, bearer, services
from stocksync.api.problems import PROBLEM_RESPONSES, problem_response
from stocksync.api.schemas import LocationPath
from stocksync.domain.codes import display_hold_code
from stocksync.domain.errors import Forbidden, TooManyStreams, TooManyStreamsForKey
from stocksync.domain.events import BUCKET_KINDS, SUPPLY_KINDS, EventKind
from stocksync.domain.model import DEFAULT_DOMAIN
from stocksync.store.outbox import Outbox, OutboxEvent

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"], responses=PROBLEM_RESPONSES)

# What a store's page shows; stale (recorded, not applied) changes and rebuilds are left out.
# Stock beyond the shelf too: a transfer shipped here, a return or a move here, supply expected.
KINDS = frozenset(
    {EventKind.HELD, EventKind.CONFIRMED, EventKind.READY, EventKind.FULFILLED}
    | {EventKind.RELEASED, EventKind.EXPIRED, EventKind.EXTENDED, EventKind.MOVED}
    | {EventKind.OVERSELL_RISK, EventKind.AT_RISK, EventKind.ADJUSTED, EventKind.COUNTED}
    | BUCKET_KINDS
    | {EventKind.TRANSFER_SHORTFALL}
    | SUPPLY_KINDS
)
# A Redis stream id, `<ms>` or `<ms>-<seq>`. ASCII digits only (`\d` would also match, say,
# Arabic-Indic digits, which Redis refuses mid-stream), at most 19 of them per part so both
# parts are within Redis's 0..2^64-1 (ids from `*` carry a 13-digit millisecond time).
# An event id: such a stream id, prefixed by the domain (and a `/`) outside the default domain.
EVENT_ID = r"^([a-z0-9][a-z0-9_-]{0,31}/)?[0-9]{1,19}(-[0-9]{1,19})?$"
# Event fields sent as numbers; the rest stay strings. Internal fields are left out.
NUMERIC = frozenset(
    {"seq", "at", "qty", "d_on_hand", "d_reserved", "on_hand", "reserved", "safety", "delta"}
    | {"count", "as_of", "occurred_at", "exp", "shortfall", "flagged"}
    | {"damaged", "quality_control", "in_transit", "shipped", "prev", "left"}
    | {"d_damaged", "d_quality_control", "d_in_transit"}
)
HIDDEN = frozenset({"fp", "key", "actor"})  # internal: fingerprints and key ids
# Which reservation, whose, and its code: only the store's staff (a key bound to the store) and
# admins see these; any other reader gets the stock changes without them (ownership rule).
RESERVATION_DETAILS = frozenset({"res", "cref", "code", "lines", "flagged_ids"})
BATCH = 500
SSE_EVENT = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": EVENT_ID},
        "event": {"type": "string"},
        "data": {"type": "string", "description": "the event as a JSON object"},
    },
    "required": ["id", "event", "data"],
}


class StreamSlots:
    """How many event streams this app has open (one dedicated Redis connection each), in all
    and per API key, so one key cannot take every slot."""

    def __init__(self, limit: int, per_key_limit: int) -> None:
        self.limit = limit
        self.per_key_limit = per_key_limit
        self.open = 0
        self.by_key: Counter[str] = Counter()

    def take(self, key_id: str) -> None:
        if self.by_key[key_id] >= self.per_key_limit:
            raise TooManyStreamsForKey(
                f"this API key has {self.per_key_limit} event streams open; close one first",
                limit=self.per_key_limit,
            )
        if self.open >= self.limit:
            raise TooManyStreams(f"{self.limit} event streams are open; retry later")
        self.open += 1
        self.by_key[key_id] += 1

    def give_back(self, key_id: str) -> None:
        self.open -= 1
        self.by_key[key_id] -= 1
        if self.by_key[key_id] <= 0:
            del self.by_key[key_id]


def _slots(request: Request) -> StreamSlots:
    slots: StreamSlots = request.app.state.event_streams  # set by create_app
    return slots


def _data(event: OutboxEvent, staff: bool) -> str:
    out: dict[str, Any] = {
        "kind": event.kind,
        "sku": event.sku,
        "loc": event.location_id,
        "seq": event.seq,
        "at": event.at_ms,
    }
    for name, value in event.fields.items():
        if name in HIDDEN or (not staff and name in RESERVATION_DETAILS):
            continue
        if name in NUMERIC and value.lstrip("-").isdigit():
            out[name] = int(value)
        elif name == "code" and value:
            out[name] = display_hold_code(value)
        else:
            out[name] = value
    return json.dumps(out, separators=(",", ":"))


class EventStreamResponse(StreamingResponse):
    """A streaming response that always closes its generator (and so its connection)."""

    def __init__(
        self, events: AsyncGenerator[str, None], close: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._events = events
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # Only the server cancels a request: at shutdown, once its grace period is over
            # (a stream never ends by itself). For the stream that is just its end.
            with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            with anyio.CancelScope(shield=True):
                await self._events.aclose()
                await self._close()


async def _still_allowed(request: Request, key: str, location_id: str) -> bool:
    """Whether the stream's key is still valid (not revoked) and may read this store."""
    try:
        principal = await services(request).api_keys.verify(key)
        if principal is None:
            return False
        principal.require("read")
        principal.require_locations([location_id])
    except Forbidden:
        return False
    except Exception:  # the key store is unreachable: end the stream rather than trust it
        log.warning("could not re-check an event stream's API key", exc_info=True)
        return False
    return True


def event_id(domain: str, stream_id: str) -> str:
    """The SSE id of an event of ``domain``'s stream (see the module's note)."""
    return stream_id if domain == DEFAULT_DOMAIN else f"{domain}/{stream_id}"


def stream_cursor(domain: str, last: str) -> str:
    """Where a stream of ``domain`` resumes after the event id ``last``."""
    cursor_domain, _, stream_id = last.rpartition("/")
    if (cursor_domain or DEFAULT_DOMAIN) != domain:
        return "0-0"  # an id of another domain's stream: this one from its start
    return stream_id


async def _stream(
    request: Request, outbox: Outbox, location_id: str, cursor: str, key: str, staff: bool
) -> AsyncGenerator[str, None]:
    svc = services(request)
    keepalive_seconds = svc.settings.event_keepalive_seconds
    propagation = svc.metrics.propagation.labels("sse")
    keepalive_ms = int(keepalive_seconds * 1000)
    check_at = monotonic() + keepalive_seconds
    while True:
        # A revoked key loses its open streams within a keepalive (and the key cache's age).
        if monotonic() >= check_at:
            if not await _still_allowed(request, key, location_id):
                yield ": the API key was revoked or lost access to this store\n\n"
                return
            check_at = monotonic() + keepalive_seconds
        events = await outbox.tail(cursor, count=BATCH, block_ms=keepalive_ms)
        if not events:
            if await request.is_disconnected():
                return
            yield ": keepalive\n\n"
            continue
        for event in events:
            cursor = event.stream_id
            if event.location_id == location_id and event.kind in KINDS:
                sse_id = event_id(outbox.domain, event.stream_id)
                yield f"id: {sse_id}\nevent: {event.kind}\ndata: {_data(event, staff)}\n\n"
                # Observed once the server took the chunk (the generator resumed): from the
                # change's server time to the event written to the client's connection.
                propagation.observe(max(0, time_ns() // 1_000_000 - event.at_ms) / 1000)


@router.get(
    "/v1/locations/{location_id}/events",
    response_class=StreamingResponse,
    responses={
        # One event (OpenAPI before 3.2: a text/event-stream's schema describes each event).
        200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}},
        429: problem_response("too_many_event_streams: this key's streams are all open"),
        503: problem_response("too_many_event_streams | store_unavailable"),
    },
)
async def location_events(
    location_id: LocationPath,
    principal: Reader,
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
    request: Request,
    # Typed `str`, not `str | None`, so the schema does not offer null (sent as "null" in a
    # header); absent (None) means "from now on".
    since: str = Query(None, pattern=EVENT_ID, description="an event id"),
    last_event_id: str = Header(None, pattern=EVENT_ID, description="the last id seen"),
) -> StreamingResponse:
    """Server-Sent Events of this store's stock and reservation changes, from now on (or
    after ``Last-Event-ID`` / ``since``); a ``: keepalive`` comment every ~15 s.

    Reservation details (``res``, ``cref``, ``code``, ``lines``) are sent to the store's staff
    (a key bound to it) and admins; other readers get the stock changes without them.

    A key may hold a few streams at once (``429 too_many_event_streams``); the server a bounded
    number (``503``, with ``Retry-After``). A stream ends when its key is revoked."""
    principal.require_locations([location_id])
    svc = services(request)
    slots = _slots(request)
    slots.take(principal.key_id)
    domain = await svc.store.domain_of_location(location_id)
    # A blocking XREAD holds its connection: each stream gets its own, not one of the pool's.
    outbox = svc.store.outbox_of(domain).dedicated()

    async def close() -> None:
        slots.give_back(principal.key_id)
        await outbox.aclose()

    try:
        last = last_event_id or since
        if last is None:  # '$' resolved now, so nothing between two reads is missed
            cursor = await outbox.last_id()
        else:
            cursor = stream_cursor(domain, last)
    except BaseException:
        await close()
        raise
    staff = "admin" in principal.scopes or principal.locations is not None
    events = _stream(request, outbox, location_id, cursor, credentials.credentials, staff)
    return EventStreamResponse(events, close)
