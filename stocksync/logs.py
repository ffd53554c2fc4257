"""Logging of every stocksync process: one JSON object per line, or lines for a person.

structlog renders; the standard library routes. Every ``logging.getLogger(__name__)`` record,
ours, uvicorn's and the libraries', goes through one handler on the root logger, whose
structlog formatter adds the time, level, logger, the request id and the actor (who is acting:
``api:<key id>``, ``worker:<name>``, ``connector:<name>``, ``cli``) from the context variables
the rest of the code already sets, and the fields a call passes in ``extra`` — only those named
in :data:`FIELDS`, so a library's ``extra`` cannot carry anything else out.

No secret and no customer data is logged: the request log names the route template, never the
path (it holds reservation ids and customer references), and no header or body.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from stocksync.config import Settings
from stocksync.store.base import ACTOR, REQUEST_ID

# What a call may add with ``extra={...}``: the request log's fields.
FIELDS = ("method", "route", "status", "outcome", "duration_ms")
# Libraries that chatter at INFO, shown only with LOG_LEVEL=DEBUG: httpx logs each request of
# a connector with its URL, alembic two lines at every start of every command.
QUIET_BELOW_DEBUG = ("httpx", "alembic")
# The actor's kinds that name something a log reader filters by (``worker:reaper`` ->
# ``worker="reaper"``).
ACTOR_FIELDS = {"api": "key_id", "worker": "worker", "connector": "connector"}


def add_context(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """The request id and the actor of the task that logged."""
    request_id = REQUEST_ID.get()
    if request_id:
        event.setdefault("request_id", request_id)
    actor = ACTOR.get()
    if actor:
        event.setdefault("actor", actor)
        kind, _, name = actor.partition(":")
        field = ACTOR_FIELDS.get(kind)
        if field is not None and name:
            event.setdefault(field, name)
    return event


def _json_dumps(event: EventDict, **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode()


def resolve_format(log_format: str, stream: TextIO | None = None) -> str:
    """``json`` or ``console``: ``auto`` is console on a terminal, JSON anywhere else."""
    if log_format != "auto":
        return log_format
    target = stream if stream is not None else sys.stderr
    return "console" if target.isatty() else "json"


def formatter(log_format: str, *, colors: bool = False) -> logging.Formatter:
    """The structlog formatter for ``json`` or ``console`` output."""
    pre_chain: list[Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # the process id tells apart the API processes of `serve --workers N`
        structlog.processors.CallsiteParameterAdder(
            [structlog.processors.CallsiteParameter.PROCESS]
        ),
        add_context,
        structlog.stdlib.ExtraAdder(allow=FIELDS),
    ]
    renderer: list[Processor]
    if log_format == "json":
        renderer = [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_json_dumps),
        ]
    else:
        # A traceback's local variables may hold a key or a customer reference: never shown.
        tracebacks = (
            structlog.dev.RichTracebackFormatter(show_locals=False)
            if colors
            else structlog.dev.plain_traceback
        )
        renderer = [structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=tracebacks)]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record comes (a test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def handler(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing ``json``, ``console`` or ``auto`` lines to ``stream`` (stderr)."""
    resolved = resolve_format(log_format, stream)
    target: logging.Handler = StderrHandler() if stream is None else logging.StreamHandler(stream)
    colors = resolved == "console" and (stream or sys.stderr).isatty()
    target.setFormatter(formatter(resolved, colors=colors))
    target.set_name("stocksync")
    return target


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Route every log record of this process to one handler with stocksync's format and
    ``settings.log_level``; a handler of an earlier call is replaced, any other is left."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "stocksync"]:
        root.removeHandler(old)
    new = handler(settings.log_format, stream)
    root.addHandler(new)
    root.setLevel(settings.log_level)
    for name in QUIET_BELOW_DEBUG:
        logging.getLogger(name).setLevel(
            logging.NOTSET if settings.log_level == "DEBUG" else logging.WARNING
        )
    return new
