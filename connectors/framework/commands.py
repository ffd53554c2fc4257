"""Engine commands: what a mapping function turns a vendor payload into (pure data, no I/O).

Each carries the source's own event id, so delivering it twice changes stock once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stocksync.domain.model import Line


@dataclass(frozen=True)
class SetCount:
    """An absolute physical count taken at ``as_of_ms`` (the as-of rule keeps later sales)."""

    sku: str
    location_id: str
    on_hand: int
    as_of_ms: int | None
    source: str
    source_event_id: str


@dataclass(frozen=True)
class Adjust:
    """A physical delta: a receipt (+), damage or loss (-), a transfer."""

    sku: str
    location_id: str
    delta: int
    reason: str
    source: str
    source_event_id: str
    occurred_at_ms: int | None = None
    supply_id: str | None = None  # a receipt of this incoming supply (a PO): consumes it


@dataclass(frozen=True)
class Sale:
    """Units sold at a till or shipped; fulfils ``reservation_id`` when it names a live hold."""

    sku: str
    location_id: str
    qty: int
    source: str
    source_event_id: str
    occurred_at_ms: int | None = None
    reservation_id: str | None = None


@dataclass(frozen=True)
class PlaceOrder:
    """An order was placed: confirm its reservation, or reserve and confirm in one step."""

    reservation_id: str
    channel: str
    lines: tuple[Line, ...]
    # Out of the repr: a refused command is named in its dead letter's reason and in logs.
    customer_ref: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CancelOrder:
    """An order was cancelled: release its reservation (a no-op when there is none)."""

    reservation_id: str


Command = SetCount | Adjust | Sale | PlaceOrder | CancelOrder


class Unmappable(ValueError):
    """A payload that cannot become engine commands; it goes to the dead-letter table."""
