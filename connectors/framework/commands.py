"""Engine commands: what a mapping function turns a vendor payload into (pure data, no I/O).

Each carries the source's own event id, so delivering it twice changes stock once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stocksync.domain.model import Disposition, Line


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


@dataclass(frozen=True)
class MoveUnits:
    """Units moved between a position's buckets: found damaged (on_hand -> damaged), written
    off (-> ``written_off``: they leave the books)."""

    sku: str
    location_id: str
    qty: int
    from_bucket: str
    to_bucket: str
    reason: str
    source: str
    source_event_id: str
    occurred_at_ms: int | None = None  # when it happened at the source (lag metric)


@dataclass(frozen=True)
class ReturnedUnits:
    """One line of a return: units of a SKU back at a location, and what they become."""

    sku: str
    location_id: str
    qty: int
    disposition: Disposition


@dataclass(frozen=True)
class RecordReturn:
    """Units a customer brought back, idempotent by ``return_id``.

    ``reservation_id``: the reservation they were sold under. With ``link_if_found`` it is
    only a guess (the id the connector would have given the order's reservation): the return
    is linked when the engine has that reservation, else it is an unlinked return.
    """

    return_id: str
    lines: tuple[ReturnedUnits, ...]
    source: str
    reservation_id: str | None = None
    link_if_found: bool = False
    occurred_at_ms: int | None = None


@dataclass(frozen=True)
class ReceiveTransfer:
    """A shipped transfer arrived: ``lines`` are (SKU, units received); one receipt each."""

    transfer_id: str
    lines: tuple[tuple[str, int], ...]
    supply_id: str | None = None


Command = (
    SetCount | Adjust | Sale | PlaceOrder | CancelOrder | MoveUnits | RecordReturn | ReceiveTransfer
)


class Unmappable(ValueError):
    """A payload that cannot become engine commands; it goes to the dead-letter table."""
