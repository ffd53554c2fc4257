"""Vocabulary of the engine: locations, positions, reservations and their state machine."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

# A SKU does not start with a dot: "." and ".." would read as paths in URLs, files and logs
# (and a SKU made only of dots names nothing). No lookahead: pydantic's regex engine has none.
SKU_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
LOCATION_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
POOL_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # a channel pool (online stock), in one domain
CHANNEL_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
MAX_QTY = 10_000
MAX_LINES = 100
# How long a position remembers its physical deltas: a count taken (as_of) up to this long ago
# still gets every delta that occurred after it (DESIGN rule 7); an older count is stale.
DELTA_WINDOW_MS = 7 * 24 * 3600 * 1000


class State(StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    READY = "ready"
    FULFILLED = "fulfilled"
    RELEASED = "released"
    EXPIRED = "expired"


TERMINAL = frozenset({State.FULFILLED, State.RELEASED, State.EXPIRED})
ACTIVE = frozenset({State.HELD, State.CONFIRMED, State.READY})


class Action(StrEnum):
    CONFIRM = "confirm"
    READY = "ready"
    FULFILL = "fulfill"
    RELEASE = "release"
    EXTEND = "extend"


# Which states each action may start from, and where it leads. The Lua scripts enforce the
# same table; tests/store/test_transitions.py checks every (state, action) pair against it.
TRANSITIONS: dict[Action, tuple[frozenset[State], State | None]] = {
    Action.CONFIRM: (frozenset({State.HELD}), State.CONFIRMED),
    Action.READY: (frozenset({State.CONFIRMED}), State.READY),
    Action.FULFILL: (ACTIVE, State.FULFILLED),
    Action.RELEASE: (ACTIVE, State.RELEASED),
    Action.EXTEND: (ACTIVE, None),  # None: the state stays, only the deadline moves
}


def transition_outcome(state: State, action: Action) -> State | None:
    """The state after ``action`` from ``state``; None when the transition is invalid.

    Repeating a transition already taken (the state is already its target) is allowed and
    returns the same state, so retries are safe.
    """
    sources, target = TRANSITIONS[action]
    if state in sources:
        return state if target is None else target
    if target is not None and state == target:
        return state
    return None


# Stock domains (DESIGN rule 2): every location belongs to one; one domain unless configured.
DEFAULT_DOMAIN = "default"
DOMAIN_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"


@dataclass(frozen=True)
class Line:
    sku: str
    location_id: str
    qty: int


def normalize_lines(lines: Iterable[Line]) -> list[Line]:
    """Sum lines for the same (sku, location) and order them deterministically."""
    totals: dict[tuple[str, str], int] = {}
    for line in lines:
        key = (line.sku, line.location_id)
        totals[key] = totals.get(key, 0) + line.qty
    return [Line(sku, loc, qty) for (sku, loc), qty in sorted(totals.items())]


# Sourcing strategies of a channel pool: how a pool line's units are given locations.
POOL_STRATEGIES = ("priority", "nearest", "most_available", "fewest_splits")


@dataclass(frozen=True)
class PoolLine:
    """A reservation line sold from a channel pool: the reserve script chooses the location(s)
    by the pool's strategy, in the same atomic call as the hold (DESIGN, channel pool)."""

    sku: str
    pool: str
    qty: int


@dataclass(frozen=True)
class PoolSource:
    """Units of a pool line the reserve script took at one location of the pool."""

    sku: str
    pool: str
    location_id: str
    qty: int


def normalize_pool_lines(lines: Iterable[PoolLine]) -> list[PoolLine]:
    """Sum pool lines for the same (sku, pool) and order them by SKU, then pool: the order in
    which the reserve script resolves them (a later line sees the earlier ones' units taken)."""
    totals: dict[tuple[str, str], int] = {}
    for line in lines:
        key = (line.sku, line.pool)
        totals[key] = totals.get(key, 0) + line.qty
    return [PoolLine(sku, pool, qty) for (sku, pool), qty in sorted(totals.items())]


def reservation_fingerprint(
    channel: str,
    lines: list[Line],
    ttl_seconds: int,
    customer_ref: str | None,
    pool_lines: list[PoolLine] | None = None,
    near: tuple[float, float] | None = None,
    allow_split: bool = False,
) -> str:
    """A digest of what a reservation request asks for, to tell a retry from a conflict.

    Pool lines, ``near`` and ``allow_split`` enter it only when there are pool lines, so the
    fingerprint of a reservation naming locations only is what it always was (stored holds of
    an older build still replay)."""
    body: dict[str, object] = {
        "channel": channel,
        "lines": [[ln.sku, ln.location_id, ln.qty] for ln in lines],
        "ttl": ttl_seconds,
        "customer_ref": customer_ref,
    }
    if pool_lines:
        body["pool_lines"] = [[ln.sku, ln.pool, ln.qty] for ln in pool_lines]
        body["near"] = None if near is None else [near[0], near[1]]
        body["split"] = allow_split
    canonical = json.dumps(body, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def customer_ref_hash(namespace: str, customer_ref: str) -> str:
    """What an erasure record keeps of a customer reference: not the reference itself."""
    return hashlib.sha256(f"{namespace}\0{customer_ref}".encode()).hexdigest()


def event_fingerprint(*parts: object) -> str:
    """A digest of a stock change request, for idempotency by (source, source_event_id)."""
    canonical = json.dumps([str(p) for p in parts], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Location:
    location_id: str
    name: str
    kind: str  # "store" | "warehouse"
    lat: float | None = None
    lon: float | None = None
    pickup: bool = False
    ship: bool = False
    domain: str = DEFAULT_DOMAIN  # the stock domain it belongs to (DESIGN rule 2)


# Channel pools (online stock, DESIGN "channel pool"): how a pool reservation chooses its
# locations, and the bounds of a pool's configuration.
POOL_STRATEGIES = ("priority", "nearest", "most_available", "fewest_splits")
MAX_POOL_LOCATIONS = 200
MAX_POOL_PRIORITY = 10_000
MAX_POOL_BUFFER = 1_000_000
MAX_BATCH_SKUS = 500  # SKUs of one batch availability read (a listing page)


@dataclass(frozen=True)
class PoolLocation:
    """A location of a pool: its sourcing priority (lowest first) and the units it keeps back
    from the pool's channels (the buffer is never offered through the pool)."""

    location_id: str
    priority: int
    buffer: int


@dataclass(frozen=True)
class Pool:
    """A channel pool: the locations of one domain an online channel sells from.

    ``locations`` are kept in the stored order, by priority then location id (whatever order
    they are given in), so two pools with the same configuration compare equal. ``domain`` is
    the domain of its locations (set by the store when read; a write derives it from them).
    """

    pool_id: str
    name: str
    channels: tuple[str, ...]
    strategy: str
    locations: tuple[PoolLocation, ...]
    domain: str = DEFAULT_DOMAIN

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.locations, key=lambda p: (p.priority, p.location_id)))
        object.__setattr__(self, "locations", ordered)
        object.__setattr__(self, "channels", tuple(self.channels))


@dataclass(frozen=True)
class PoolLocationAvailability:
    """One location of a pool read for a SKU: ``available`` as channels see it (clamped at
    zero), the pool's ``buffer`` there and what the pool ``offered`` from it:
    max(0, on_hand - reserved - safety - buffer)."""

    location_id: str
    available: int
    buffer: int
    offered: int


@dataclass(frozen=True)
class PoolAvailability:
    """A SKU's availability through a pool: the sum of what each location offers."""

    sku: str
    pool_id: str
    available: int
    locations: tuple[PoolLocationAvailability, ...]


def offered_units(on_hand: int, reserved: int, safety: int, buffer: int) -> int:
    """What a pool offers of a position (the Lua scripts compute the same)."""
    return max(0, on_hand - reserved - safety - buffer)


class ArrivalKind(StrEnum):
    SUPPLY = "supply"
    TRANSFER = "transfer"


class Bucket(StrEnum):
    """Where a position's units are (DESIGN "stock beyond the shelf"); only on_hand sells."""

    ON_HAND = "on_hand"
    DAMAGED = "damaged"
    QUALITY_CONTROL = "quality_control"
    IN_TRANSIT = "in_transit"


# A move's target that is no bucket: the units leave the position (scrapped, destroyed).
WRITTEN_OFF = "written_off"
# Buckets a move (POST /v1/stock/{location}/{sku}/moves) may take units from or put them in;
# in_transit changes only through transfers.
MOVABLE_BUCKETS = frozenset({Bucket.ON_HAND, Bucket.DAMAGED, Bucket.QUALITY_CONTROL})


class Disposition(StrEnum):
    """What a returned unit becomes."""

    RESTOCK = "restock"  # on_hand: back on sale
    INSPECT = "inspect"  # quality_control: awaiting inspection
    DAMAGED = "damaged"


DISPOSITION_BUCKET = {
    Disposition.RESTOCK: Bucket.ON_HAND,
    Disposition.INSPECT: Bucket.QUALITY_CONTROL,
    Disposition.DAMAGED: Bucket.DAMAGED,
}


class TransferState(StrEnum):
    SHIPPED = "shipped"
    RECEIVED = "received"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Arrival:
    """Units on their way to a position: an incoming supply (a purchase order, an announced
    delivery) or a shipped transfer's line, with the time they are expected (None: not given)."""

    kind: ArrivalKind
    id: str  # the supply_id or the transfer_id
    qty: int
    expected_at_ms: int | None


@dataclass(frozen=True)
class Position:
    sku: str
    location_id: str
    on_hand: int
    reserved: int
    safety_stock: int
    # Stock beyond the shelf: owned by the position, never in `available`.
    damaged: int = 0
    quality_control: int = 0
    in_transit: int = 0
    arrivals: tuple[Arrival, ...] = ()

    @property
    def incoming(self) -> int:
        """Units of incoming supplies (transfers on their way are in ``in_transit``)."""
        return sum(a.qty for a in self.arrivals if a.kind is ArrivalKind.SUPPLY)

    def available_by(self, by_ms: int) -> int:
        """Available-to-promise at ``by_ms``: available now plus the arrivals expected by then
        (an arrival without an expected time is not promised)."""
        due = sum(
            a.qty
            for a in self.arrivals
            if a.expected_at_ms is not None and a.expected_at_ms <= by_ms
        )
        return max(0, self.available_raw + due)

    def next_arrival(self) -> Arrival | None:
        """The earliest arrival with an expected time (None when there is none)."""
        dated = [a for a in self.arrivals if a.expected_at_ms is not None]
        return min(dated, key=lambda a: (a.expected_at_ms or 0, a.kind, a.id)) if dated else None

    @property
    def available_raw(self) -> int:
        """Unclamped availability; negative after a till sold units promised to holds."""
        return self.on_hand - self.reserved - self.safety_stock

    @property
    def available(self) -> int:
        return max(0, self.available_raw)


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    channel: str
    state: State
    lines: list[Line]
    created_at_ms: int
    updated_at_ms: int
    expires_at_ms: int | None
    customer_ref: str | None = None
    at_risk: bool = False
    history: list[tuple[str, int]] = field(default_factory=list)
    hold_code: str | None = None  # stored form, without the dash
    key_id: str | None = None  # the API key that created it (None: an internal caller)
    # Where its pool lines were sourced when it was made (empty: it named locations only).
    pool_sources: list[PoolSource] = field(default_factory=list)
    # Units of a fulfilled reservation returned so far per SKU, and those returns' ids.
    returned_units: dict[str, int] = field(default_factory=dict)
    return_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReserveResult:
    reservation: Reservation
    created: bool  # False when this was an idempotent replay


@dataclass(frozen=True)
class StockChangeResult:
    position: Position
    applied: bool  # False when a count was older than the newest applied one
    replayed: bool  # True when (source, source_event_id) was seen before
    seq: int
    at_risk_reservations: int = 0
