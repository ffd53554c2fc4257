"""How ``stocksync serve`` runs uvicorn: its options, and a request-head read timeout.

uvicorn has no timeout for reading a request's head: a client that connects and then sends
its headers a byte at a time (slow-loris) holds the connection, and a file descriptor, for as
long as it likes. :class:`HeadTimeoutProtocol` is uvicorn's httptools protocol with that
timeout: a request head must be complete within ``header_read_timeout_seconds`` of the
connection (first request) or of the head's first byte (later requests on a kept-alive
connection, whose idle wait uvicorn's ``timeout_keep_alive`` already bounds).
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from stocksync.config import Settings

# Open event streams never end by themselves: on shutdown they get this long, then are closed.
SHUTDOWN_GRACE_SECONDS = 5


def _request_timeout_response(seconds: float) -> bytes:
    body = json.dumps(
        {
            "type": "/problems/request_timeout",
            "title": "Request timeout",
            "status": 408,
            "detail": f"the request head was not complete within {seconds:g} s",
            "code": "request_timeout",
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that closes a connection whose request head is late."""

    def __init__(self, *args: Any, header_read_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_read_timeout = header_read_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # a first request's clock started with the connection
            self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.header_read_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # no response to cut short
            self.transport.write(_request_timeout_response(self.header_read_timeout))
        self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run`` for ``stocksync serve`` (one worker or many)."""
    protocol = partial(
        HeadTimeoutProtocol, header_read_timeout=settings.header_read_timeout_seconds
    )
    return {
        "host": settings.host,
        "port": settings.port,
        # A partial of a module-level class pickles, so worker processes get it too.
        "http": cast("type[asyncio.Protocol]", protocol),
        # uvicorn's own lines go to the root logger in stocksync's format and level
        # (stocksync.logs); its access log is off: the app logs each request with its id.
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS,
    }
