"""A batch of outbox entries as ledger rows, built in one pass over the stream fields.

The ledger copy writes thousands of events a second, so a movement is a plain tuple in
:data:`MOVEMENT_COLUMNS` order (no per-event dict or model object), built straight from the
entry's fields as XREADGROUP returned them. Only what the fold needs becomes an object: the
events of reservations (:class:`~stocksync.ledger.fold.ReservationEvent`), and the rare events
that are not about a SKU (locations, erasures) stay :class:`OutboxEvent` values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from time import gmtime, strftime
from typing import Any

import orjson

from stocksync.domain.clock import ms_to_datetime
from stocksync.domain.events import RESERVATION_KINDS, TRANSITION_KINDS
from stocksync.ledger.fold import ReservationEvent
from stocksync.store.outbox import Entry, OutboxEvent, decode_event

MOVEMENT_COLUMNS = (
    "event_id",
    "namespace",
    "kind",
    "sku",
    "location_id",
    "seq",
    "reservation_id",
    "channel",
    "qty",
    "d_on_hand",
    "d_reserved",
    "d_damaged",
    "d_quality_control",
    "d_in_transit",
    "on_hand",
    "reserved",
    "source",
    "source_event_id",
    "reason",
    "actor",
    "occurred_at",
    "recorded_at",
    "details",
)
# Fields with a column of their own (or the entry's header); the rest goes to `details` (a
# count's `as_of` too: it becomes `occurred_at`, and the rebuild reads it from `details`; a
# bucket event's values after it, `damaged`, `quality_control`, `in_transit`, as well).
_HEADER = frozenset({"kind", "sku", "loc", "seq", "at"})
_BUCKET_DELTAS = ("d_damaged", "d_quality_control", "d_in_transit")  # absent: 0
_COLUMNS = frozenset(
    {"res", "ch", "qty", "d_on_hand", "d_reserved", "on_hand", "reserved", "src", "src_id"}
    | {"reason", "occurred_at", "actor"}
    | set(_BUCKET_DELTAS)
)
_NOT_DETAILS = _HEADER | _COLUMNS
_RESERVATION_KINDS = frozenset(k.value for k in RESERVATION_KINDS)
_TRANSITION_KINDS = frozenset(k.value for k in TRANSITION_KINDS)
_encode_json = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def encode_details(details: dict[str, str]) -> str:
    """Canonical JSON, as ``json.dumps(sort_keys=True, separators=(",", ":"))`` writes it (the
    erasure searches it by exact text). orjson writes the same bytes for ASCII text, several
    times faster; text with other characters (escaped by json) takes json's path."""
    out = orjson.dumps(details, option=orjson.OPT_SORT_KEYS)
    return out.decode() if out.isascii() else _encode_json(details)


TimeFormat = Callable[[int], Any]  # epoch ms -> the value the database driver takes


@lru_cache(maxsize=4096)  # bounded: the events of a batch share a few thousand seconds at most
def _second_text(second: int) -> str:
    # The year at four digits: strftime's %Y writes year 229 as "229", which SQLite stores and
    # then no reader can parse (a client may state a change occurred in any year).
    t = gmtime(second)
    return f"{t.tm_year:04d}-" + strftime("%m-%d %H:%M:%S", t)


def sqlite_time(ms: int) -> str:
    """Epoch ms as SQLAlchemy stores a UTC datetime in SQLite (``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    second, milli = divmod(ms, 1000)
    return f"{_second_text(second)}.{milli:03d}000"


def sqlite_datetime(moment: datetime | None) -> str | None:
    """A datetime column value as SQLAlchemy stores it in SQLite."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def postgres_time(ms: int) -> str:
    """Epoch ms as PostgreSQL's text input for ``timestamptz`` (explicitly UTC)."""
    second, milli = divmod(ms, 1000)
    return f"{_second_text(second)}.{milli:03d}+00"


@lru_cache(maxsize=4096)  # bounded; a batch's events share far fewer milliseconds
def _moment(ms: int) -> datetime:
    return ms_to_datetime(ms)


@dataclass
class NamespaceRows:
    """The rows of one namespace's events in a batch."""

    namespace: str
    movements: list[tuple[Any, ...]] = field(default_factory=list)
    # reservation id -> its events in this batch (each event once)
    reservations: dict[str, list[ReservationEvent]] = field(default_factory=dict)
    transitions: set[tuple[str, str, int]] = field(default_factory=set)  # (res, state, at ms)
    others: list[OutboxEvent] = field(default_factory=list)  # not about a SKU, stream order


def build(
    namespace: str, entries: Sequence[Entry], time_format: TimeFormat, recorded_at: Any
) -> NamespaceRows:
    """The rows of ``entries`` (stream id, fields with the header); each stream id once,
    deleted entries (no fields) skipped. Raises ValueError on a malformed entry.

    The movements keep the order the entries came in (XREADGROUP's: the stream's): each row
    is keyed by its event id and the reservation fold does not depend on order, so only the
    rare events that are not about a SKU are put in stream order.
    """
    out = NamespaceRows(namespace)
    append = out.movements.append
    reservations = out.reservations
    transitions = out.transitions
    others: list[OutboxEvent] = []
    seen: set[str] = set()
    prefix = namespace + "/"
    for stream_id, f in entries:
        if not f or stream_id in seen:
            continue
        seen.add(stream_id)
        try:
            kind, sku, loc = f["kind"], f["sku"], f["loc"]
            seq, at_ms = int(f["seq"]), int(f["at"])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"malformed outbox entry {stream_id}: {f!r}") from exc
        if not sku:
            others.append(decode_event(namespace, stream_id, f))
            continue
        extra = f.keys() - _NOT_DETAILS  # a set operation: most events have 0-6 such fields
        details = {k: f[k] for k in extra} if extra else {}
        get = f.get
        occurred = get("occurred_at") or get("as_of")
        if occurred:
            occurred_ms = int(occurred)
            details["at"] = str(at_ms)  # when the engine applied it
        else:
            occurred_ms = at_ms
        res = get("res") or None
        channel = get("ch") or None
        qty = get("qty")
        on_hand, reserved = get("on_hand"), get("reserved")
        d_on_hand, d_reserved = get("d_on_hand"), get("d_reserved")
        # Most events change no bucket beyond the shelf: one lookup each, absent = 0.
        d_damaged, d_quality_control, d_in_transit = map(get, _BUCKET_DELTAS)
        append(
            (
                prefix + stream_id,
                namespace,
                kind,
                sku,
                loc,
                seq,
                res,
                channel,
                int(qty) if qty else None,
                int(d_on_hand) if d_on_hand else 0,
                int(d_reserved) if d_reserved else 0,
                int(d_damaged) if d_damaged else 0,
                int(d_quality_control) if d_quality_control else 0,
                int(d_in_transit) if d_in_transit else 0,
                int(on_hand) if on_hand else None,
                int(reserved) if reserved else None,
                get("src") or None,
                get("src_id") or None,
                get("reason") or None,
                get("actor") or None,
                time_format(occurred_ms),
                recorded_at,
                encode_details(details) if details else None,
            )
        )
        if res is not None and kind in _RESERVATION_KINDS:
            at = _moment(occurred_ms)
            event = ReservationEvent(kind, sku, loc, seq, at, channel or "", int(qty or 0), details)
            if res in reservations:
                reservations[res].append(event)
            else:
                reservations[res] = [event]
            if kind in _TRANSITION_KINDS:
                transitions.add((res, kind, at_ms))
    if len(others) > 1:
        others.sort(key=lambda e: e.order)
    out.others = others
    return out


def entries_of(events: Iterable[OutboxEvent]) -> dict[str, list[Entry]]:
    """Decoded events back as stream entries, by namespace (the write-through and tests
    hand the ledger :class:`OutboxEvent` values)."""
    out: dict[str, list[Entry]] = {}
    for e in events:
        header = {"kind": e.kind, "sku": e.sku, "loc": e.location_id, "seq": str(e.seq)}
        fields = {**header, "at": str(e.at_ms), **e.fields}
        out.setdefault(e.namespace, []).append((e.stream_id, fields))
    return out
