"""Live events of a store (Server-Sent Events), read from the outbox stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from stocksync.api.deps import Reader, services
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.schemas import LocationPath
from stocksync.domain.codes import display_hold_code
from stocksync.domain.errors import TooManyStreams
from stocksync.domain.events import EventKind
from stocksync.store.outbox import Outbox, OutboxEvent

router = APIRouter(tags=["events"], responses=PROBLEM_RESPONSES)

# What a store's page shows; stale (recorded, not applied) changes and rebuilds are left out.
KINDS = frozenset(
    {EventKind.HELD, EventKind.CONFIRMED, EventKind.READY, EventKind.FULFILLED}
    | {EventKind.RELEASED, EventKind.EXPIRED, EventKind.EXTENDED, EventKind.MOVED}
    | {EventKind.OVERSELL_RISK, EventKind.AT_RISK, EventKind.ADJUSTED, EventKind.COUNTED}
)
STREAM_ID = r"^\d{1,20}(-\d{1,20})?$"
# Event fields sent as numbers; the rest stay strings. Internal fields are left out.
NUMERIC = frozenset(
    {"seq", "at", "qty", "d_on_hand", "d_reserved", "on_hand", "reserved", "safety", "delta"}
    | {"count", "as_of", "occurred_at", "exp", "shortfall", "flagged"}
)
HIDDEN = frozenset({"fp", "key", "actor"})  # internal: fingerprints and key ids
BATCH = 500


class StreamSlots:
    """How many event streams this app has open (one dedicated Redis connection each)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def take(self) -> None:
        if self.open >= self.limit:
            raise TooManyStreams(f"{self.limit} event streams are open; retry later")
        self.open += 1

    def give_back(self) -> None:
        self.open -= 1


def _slots(request: Request) -> StreamSlots:
    slots: StreamSlots = request.app.state.event_streams  # set by create_app
    return slots


def _data(event: OutboxEvent) -> str:
    out: dict[str, Any] = {
        "kind": event.kind,
        "sku": event.sku,
        "loc": event.location_id,
        "seq": event.seq,
        "at": event.at_ms,
    }
    for name, value in event.fields.items():
        if name in HIDDEN:
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


async def _stream(
    request: Request, outbox: Outbox, location_id: str, cursor: str
) -> AsyncGenerator[str, None]:
    keepalive_ms = int(services(request).settings.event_keepalive_seconds * 1000)
    while True:
        events = await outbox.tail(cursor, count=BATCH, block_ms=keepalive_ms)
        if not events:
            if await request.is_disconnected():
                return
            yield ": keepalive\n\n"
            continue
        for event in events:
            cursor = event.stream_id
            if event.location_id == location_id and event.kind in KINDS:
                yield f"id: {event.stream_id}\nevent: {event.kind}\ndata: {_data(event)}\n\n"


@router.get(
    "/v1/locations/{location_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def location_events(
    location_id: LocationPath,
    principal: Reader,
    request: Request,
    since: Annotated[str | None, Query(pattern=STREAM_ID, description="a stream id")] = None,
    last_event_id: Annotated[str | None, Header(pattern=STREAM_ID)] = None,
) -> StreamingResponse:
    """Server-Sent Events of this store's stock and reservation changes, from now on (or
    after ``Last-Event-ID`` / ``since``); a ``: keepalive`` comment every ~15 s."""
    principal.require_locations([location_id])
    svc = services(request)
    slots = _slots(request)
    slots.take()
    # A blocking XREAD holds its connection: each stream gets its own, not one of the pool's.
    outbox = svc.store.outbox.dedicated()

    async def close() -> None:
        slots.give_back()
        await outbox.aclose()

    try:
        cursor = last_event_id or since
        if cursor is None:  # '$' resolved now, so nothing between two reads is missed
            cursor = await outbox.last_id()
    except BaseException:
        await close()
        raise
    return EventStreamResponse(_stream(request, outbox, location_id, cursor), close)
