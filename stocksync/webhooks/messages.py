"""Webhook messages from a batch of outbox events: coalesced, per subscription.

A batch is what one read of a domain's outbox returned. Within it:

- each position (sku, location) whose stock moved gives at most ONE ``availability.changed``,
  carrying the value after the batch's last event there and the value before its first (a burst
  of 50 sales read together is one message with the final value); ``stock.out`` /
  ``stock.back_in`` when the shown value (never below 0) crossed 0;
- each pool holding such a position gives the same for the pool's offered quantity of the SKU:
  Σ over its locations of max(0, available - buffer), the other locations read as they are now;
- each reservation transition gives one ``reservation.<state>`` with its lines.

The values come from the events themselves (``on_hand`` and ``reserved`` after each change,
``d_on_hand`` / ``d_reserved`` its deltas), so they are the values at that point of the stream,
not whatever Redis holds when the worker gets to them; only safety stock (rarely changed, not on
every event) and untouched pool locations are read from Redis.

Message ids are derived from the stream id and the subject, so a batch processed again after a
crash (before its acknowledgement) makes the same ids, and the queue keeps each once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stocksync.domain.events import RESERVATION_STATE_KINDS
from stocksync.store.outbox import OutboxEvent, stream_order

AVAILABILITY_CHANGED = "availability.changed"
STOCK_OUT = "stock.out"
STOCK_BACK_IN = "stock.back_in"
RESERVATION_EVENTS = tuple(f"reservation.{kind.value}" for kind in RESERVATION_STATE_KINDS)
EVENT_TYPES = (AVAILABILITY_CHANGED, STOCK_OUT, STOCK_BACK_IN, *sorted(RESERVATION_EVENTS))

Position = tuple[str, str]  # sku, location_id
Reading = tuple[int, int, int]  # on_hand, reserved, safety


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    secret: str
    events: frozenset[str]
    pool: str | None = None
    location_ids: frozenset[str] | None = None


@dataclass
class Moved:
    """How a position's stock moved over a batch (safety stock not yet subtracted)."""

    before: int  # on_hand - reserved before the batch's first event there
    after: int  # on_hand - reserved after its last
    seq: int
    first_at_ms: int
    last_stream_id: str


@dataclass(frozen=True)
class Message:
    event_id: str
    event_type: str
    lane_key: str  # messages with the same key are delivered in order
    body: str
    at_ms: int  # server time of the (first) change it reports


@dataclass
class BatchChanges:
    """What a batch changed: moved positions and reservation transitions."""

    namespace: str
    moved: dict[Position, Moved] = field(default_factory=dict)
    transitions: list[tuple[OutboxEvent, list[dict[str, object]]]] = field(default_factory=list)

    @property
    def skus(self) -> set[str]:
        return {sku for sku, _ in self.moved}


def _int(fields: Mapping[str, str], name: str) -> int | None:
    value = fields.get(name)
    try:
        return None if value is None or value == "" else int(value)
    except ValueError:
        return None


def changes_of(namespace: str, events: Iterable[OutboxEvent]) -> BatchChanges:
    """The moved positions and transitions of ``events`` (one domain, stream order)."""
    out = BatchChanges(namespace)
    by_res: dict[tuple[str, str], int] = {}
    for e in events:
        if e.kind in RESERVATION_STATE_KINDS and e.fields.get("res"):
            key = (e.fields["res"], e.kind)
            line = {"sku": e.sku, "location_id": e.location_id, "qty": _int(e.fields, "qty") or 0}
            if key in by_res:
                out.transitions[by_res[key]][1].append(line)
            else:
                by_res[key] = len(out.transitions)
                out.transitions.append((e, [line]))
        on_hand, reserved = _int(e.fields, "on_hand"), _int(e.fields, "reserved")
        d_on_hand, d_reserved = _int(e.fields, "d_on_hand"), _int(e.fields, "d_reserved")
        if not e.sku or on_hand is None or reserved is None or d_on_hand is None:
            continue  # no stock moved (confirm, extend, a stale count) or no position
        if d_reserved is None:
            continue
        after = on_hand - reserved
        found = out.moved.get((e.sku, e.location_id))
        if found is None:
            before = (on_hand - d_on_hand) - (reserved - d_reserved)
            out.moved[(e.sku, e.location_id)] = Moved(before, after, e.seq, e.at_ms, e.stream_id)
        else:
            found.after, found.seq, found.last_stream_id = after, e.seq, e.stream_id
    return out


def message_id(namespace: str, stream_id: str, event_type: str, subject: str) -> str:
    digest = hashlib.sha256(f"{namespace}|{stream_id}|{event_type}|{subject}".encode())
    return "msg_" + digest.hexdigest()[:40]


def _body(event_type: str, at_ms: int, data: Mapping[str, object]) -> str:
    stamp = datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds")
    return json.dumps(
        {"type": event_type, "timestamp": stamp.replace("+00:00", "Z"), "data": data},
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class _Value:
    subject: dict[str, object]  # sku and location_id, or sku and pool
    before: int
    after: int
    moved: Moved


def _stock_messages(namespace: str, value: _Value) -> list[Message]:
    """availability.changed and maybe stock.out / stock.back_in for one moved value."""
    before, after = max(0, value.before), max(0, value.after)
    if before == after:
        return []
    types = [AVAILABILITY_CHANGED]
    if before > 0 and after == 0:
        types.append(STOCK_OUT)
    elif before == 0 and after > 0:
        types.append(STOCK_BACK_IN)
    subject = "/".join(str(v) for v in value.subject.values())
    data = {
        **value.subject,
        "available": after,
        "previous": before,
        "seq": value.moved.seq,
        "at": value.moved.first_at_ms,
    }
    return [
        Message(
            event_id=message_id(namespace, value.moved.last_stream_id, t, subject),
            event_type=t,
            lane_key=str(value.subject["sku"]),
            body=_body(t, value.moved.first_at_ms, data),
            at_ms=value.moved.first_at_ms,
        )
        for t in types
    ]


def _wants_location(sub: Subscription, location_id: str) -> bool:
    if sub.location_ids is not None:
        return location_id in sub.location_ids
    return sub.pool is None


def _wants_pool(sub: Subscription, pool_id: str) -> bool:
    if sub.pool is not None:
        return pool_id == sub.pool
    return sub.location_ids is None


def _wants_lines(
    sub: Subscription, locations: set[str], pools: Mapping[str, Sequence[tuple[str, int]]]
) -> bool:
    if sub.pool is None and sub.location_ids is None:
        return True
    if sub.location_ids is not None and locations & sub.location_ids:
        return True
    pool_locs = {loc for loc, _ in pools.get(sub.pool or "", ())}
    return bool(locations & pool_locs)


def build_messages(
    changes: BatchChanges,
    subscriptions: Sequence[Subscription],
    pools: Mapping[str, Sequence[tuple[str, int]]],
    readings: Mapping[Position, Reading],
) -> list[tuple[str, Message]]:
    """(subscription id, message) pairs for one batch, in delivery order.

    ``pools``: the domain's pools as [(location_id, buffer), ...]; ``readings``: the current
    (on_hand, reserved, safety) of every moved position and of every location of a pool that
    holds one (absent = an empty position)."""
    ns = changes.namespace
    out: list[tuple[str, Message]] = []

    for event, lines in changes.transitions:
        event_type = f"reservation.{event.kind}"
        res = event.fields["res"]
        data = {
            "reservation_id": res,
            "state": event.kind,
            "channel": event.fields.get("ch", ""),
            "lines": lines,
            "at": event.at_ms,
        }
        message = Message(
            event_id=message_id(ns, event.stream_id, event_type, res),
            event_type=event_type,
            lane_key="res:" + res,
            body=_body(event_type, event.at_ms, data),
            at_ms=event.at_ms,
        )
        locations = {str(line["location_id"]) for line in lines}
        for sub in subscriptions:
            if event_type in sub.events and _wants_lines(sub, locations, pools):
                out.append((sub.id, message))

    def safety(position: Position) -> int:
        return readings.get(position, (0, 0, 0))[2]

    def now(position: Position) -> int:
        on_hand, reserved, safe = readings.get(position, (0, 0, 0))
        return on_hand - reserved - safe

    stock_subs = [s for s in subscriptions if s.events - set(RESERVATION_EVENTS)]
    if not stock_subs:
        return out
    for (sku, loc), moved in sorted(
        changes.moved.items(), key=lambda kv: stream_order(kv[1].last_stream_id)
    ):
        value = _Value(
            {"sku": sku, "location_id": loc},
            moved.before - safety((sku, loc)),
            moved.after - safety((sku, loc)),
            moved,
        )
        for message in _stock_messages(ns, value):
            for sub in stock_subs:
                if message.event_type in sub.events and _wants_location(sub, loc):
                    out.append((sub.id, message))

    all_moved = changes.moved
    for pool_id, members in sorted(pools.items()):
        for sku in sorted(changes.skus):
            touched = [changes.moved[(sku, loc)] for loc, _ in members if (sku, loc) in all_moved]
            if not touched:
                continue
            before = after = 0
            for loc, buffer in members:
                moved_here = changes.moved.get((sku, loc))
                if moved_here is None:
                    current = now((sku, loc))
                    b = a = current
                else:
                    b = moved_here.before - safety((sku, loc))
                    a = moved_here.after - safety((sku, loc))
                before += max(0, b - buffer)
                after += max(0, a - buffer)
            last = max(touched, key=lambda m: stream_order(m.last_stream_id))
            first_at = min(m.first_at_ms for m in touched)
            combined = Moved(before, after, last.seq, first_at, last.last_stream_id)
            value = _Value({"sku": sku, "pool": pool_id}, before, after, combined)
            for message in _stock_messages(ns, value):
                for sub in stock_subs:
                    if message.event_type in sub.events and _wants_pool(sub, pool_id):
                        out.append((sub.id, message))
    return out
