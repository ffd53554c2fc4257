"""Domain errors. Each carries a stable ``code`` and the HTTP status the API maps it to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


class StockSyncError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Error"
    # Seconds after which the same request may succeed (the API's Retry-After); None: never.
    retry_after_seconds: int | None = None  # a Retry-After header, when waiting helps

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


@dataclass(frozen=True)
class ShortLine:
    """One reservation line that does not fit in available stock.

    A pool line names its ``pool`` (and no location): ``available`` is then the pool's offer,
    the units its locations offer beyond their buffers."""

    sku: str
    location_id: str | None
    requested: int
    available: int
    pool: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The problem body's entry: ``{sku, location_id | pool, requested, available}``."""
        where = {"pool": self.pool} if self.pool is not None else {"location_id": self.location_id}
        return {"sku": self.sku, **where, "requested": self.requested, "available": self.available}


class InsufficientStock(StockSyncError):
    code = "insufficient_stock"
    status = 409
    title = "Insufficient stock"

    def __init__(self, short_lines: list[ShortLine], action: str = "reserved") -> None:
        super().__init__(
            f"{len(short_lines)} line(s) exceed available stock; nothing was {action}",
            short_lines=[line.as_dict() for line in short_lines],
        )
        self.short_lines = short_lines


class IdempotencyConflict(StockSyncError):
    code = "idempotency_conflict"
    status = 409
    title = "Idempotency key reused with a different body"


class InvalidTransition(StockSyncError):
    code = "invalid_transition"
    status = 409
    title = "Invalid state transition"


class OnHandMismatch(StockSyncError):
    code = "on_hand_mismatch"
    status = 409
    title = "expected_on_hand does not match"


class NotFound(StockSyncError):
    code = "not_found"
    status = 404
    title = "Not found"


class Unauthorized(StockSyncError):
    code = "unauthorized"
    status = 401
    title = "Unauthorized"


class Forbidden(StockSyncError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class StockRegressed(StockSyncError):
    """Redis holds an older state of this SKU than the ledger (restored from an old file)."""

    code = "stock_regressed"
    status = 503
    title = "Stock state is behind the ledger"


class LedgerUnavailable(StockSyncError):
    code = "ledger_unavailable"
    status = 503
    title = "The ledger could not be written"


class LedgerBusy(StockSyncError):
    """Too many sales wait for their ledger commit in this process (the queue is full)."""

    code = "ledger_busy"
    status = 503
    title = "Too many sales waiting for the ledger"
    retry_after_seconds = 1


class StoreBusy(StockSyncError):
    """Too many operations wait for Redis in this process (the batcher's queue is full)."""

    code = "store_busy"
    status = 503
    title = "Too many operations waiting"
    retry_after_seconds = 1


class ReplicationTimeout(StockSyncError):
    """No replica confirmed a change within the wait (``replica_wait``). The change WAS
    applied on the primary, so it is not lost unless that primary fails before a replica
    copies it; the client must not read this as a refusal, and retrying the same request is
    safe because every operation is idempotent."""

    code = "replication_timeout"
    status = 503
    title = "No replica confirmed the change in time"
    retry_after_seconds = 1


class HoldLimitReached(StockSyncError):
    """Too many active reservations for one API key or one customer, or too many units held
    by one API key at one location (``scope``: key, customer or units)."""

    code = "hold_limit_reached"
    status = 409
    title = "Active hold limit reached"


class RateLimited(StockSyncError):
    """One API key sent more requests than its rate; ``retry_after`` seconds to wait."""

    code = "rate_limited"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after_seconds = retry_after


class Unprocessable(StockSyncError):
    """A well-formed request that cannot apply to this resource (e.g. nothing to move)."""

    code = "validation_error"
    status = 422
    title = "Invalid request"


class TooManyStreams(StockSyncError):
    """Every event stream slot of this server is taken (each holds a Redis connection)."""

    code = "too_many_event_streams"
    status = 503
    title = "Too many open event streams"
    retry_after_seconds = 5


class TooManyStreamsForKey(TooManyStreams):
    """One API key has its share of event streams open: the client must close one first."""

    status = 429


class CrossDomain(StockSyncError):
    """A request's locations are in more than one stock domain (DESIGN rule 2): one script call
    can only touch one domain's slot, so nothing was changed."""

    code = "cross_domain"
    status = 409
    title = "Locations in more than one stock domain"


class DomainChange(StockSyncError):
    """An upsert named another domain for an existing location: moving a location between
    domains is an offline operation (`stocksync domains move-location`)."""

    code = "domain_change"
    status = 409
    title = "A location's stock domain changes only offline"


class DomainMoving(StockSyncError):
    """The stock domain is being moved to another Redis node; nothing was done. Retry."""

    code = "domain_moving"
    status = 503
    title = "Stock domain moving to another node"
    retry_after_seconds = 1


class WebhookTargetRefused(StockSyncError):
    """A webhook URL that is not http(s), or that points inside the network (SSRF)."""

    code = "webhook_target_refused"
    status = 422
    title = "Webhook URL not allowed"


class WebhookLimitReached(StockSyncError):
    """The namespace has as many webhook subscriptions as configured; delete one first."""

    code = "webhook_limit_reached"
    status = 409
    title = "Too many webhook subscriptions"


class InsufficientUnits(StockSyncError):
    """A bucket of a position lacks the units a move, a transfer or a receipt asks to take
    from it (``bucket``, ``sku``, ``location_id``, ``requested``, ``available``); nothing
    changed."""

    code = "insufficient_units"
    status = 409
    title = "Not enough units in that bucket"


class NotFulfilled(StockSyncError):
    """A return names a reservation that was not fulfilled (nothing was sold to return)."""

    code = "reservation_not_fulfilled"
    status = 409
    title = "The reservation was not fulfilled"


class ReturnExceedsFulfilled(StockSyncError):
    """A return would bring back more units of a SKU than the reservation fulfilled, counting
    its earlier returns (``sku``, ``fulfilled``, ``returned``, ``requested``)."""

    code = "return_exceeds_fulfilled"
    status = 409
    title = "More units returned than were sold"


class ReceiveExceedsShipped(StockSyncError):
    """A transfer receipt names more units of a SKU than were shipped, or a SKU that was not."""

    code = "receive_exceeds_shipped"
    status = 409
    title = "More units received than were shipped"


class TooManyArrivals(StockSyncError):
    """A position already has the most arrivals (incoming supplies and shipped transfer lines)
    it may have (``sku``, ``location_id``, ``limit``); nothing changed."""

    code = "too_many_arrivals"
    status = 409
    title = "Too many arrivals at this position"


class ReturnWindowClosed(StockSyncError):
    """A return names a reservation fulfilled longer ago than the return retention: its earlier
    returns are no longer on record, so a return could exceed what was sold
    (``fulfilled_at``)."""

    code = "return_window_closed"
    status = 409
    title = "The reservation no longer takes returns"
