"""Pacing calls by Shopify's own account of the app's cost bucket.

Every GraphQL Admin answer, a throttled one included, carries
``extensions.cost.throttleStatus {maximumAvailable, currentlyAvailable, restoreRate}``: the
bucket's size, what is left in it, and the points it regains per second (a leaky bucket:
https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits and
https://shopify.dev/docs/api/usage/limits). A query runs only when the bucket holds its
requested cost, so before sending one we wait until, at the restore rate, it will.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from connectors.shopify.cost import MAX_QUERY_COST

MAX_WAIT_SECONDS = 60.0  # one wait is never longer (a full standard bucket refills in ~10-20 s)


@dataclass(frozen=True)
class ThrottleStatus:
    maximum: float
    available: float
    restore_rate: float  # points per second


@dataclass(frozen=True)
class QueryCost:
    """``extensions.cost`` of one answer (``actual`` is None when the query did not run)."""

    requested: int | None
    actual: int | None
    throttle: ThrottleStatus | None


def query_cost(body: Mapping[str, Any]) -> QueryCost | None:
    """The ``extensions.cost`` of a GraphQL answer, or None when it has none."""
    cost = (body.get("extensions") or {}).get("cost")
    if not isinstance(cost, Mapping):
        return None
    status = cost.get("throttleStatus")
    throttle = None
    if isinstance(status, Mapping):
        try:
            throttle = ThrottleStatus(
                float(status["maximumAvailable"]),
                float(status["currentlyAvailable"]),
                float(status["restoreRate"]),
            )
        except (KeyError, TypeError, ValueError):
            throttle = None
    return QueryCost(
        _int(cost.get("requestedQueryCost")), _int(cost.get("actualQueryCost")), throttle
    )


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


class Pacer:
    """What we last heard of the bucket, and how long a query of a given cost must wait."""

    def __init__(
        self,
        max_wait_seconds: float = MAX_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_wait_seconds = max_wait_seconds
        self.clock = clock
        self.status: ThrottleStatus | None = None
        self.seen_at = 0.0
        self._lock = anyio.Lock()
        self.waited_seconds = 0.0  # in total (for tests and metrics)

    def observe(self, status: ThrottleStatus | None) -> None:
        if status is not None and status.restore_rate > 0:
            self.status = status
            self.seen_at = self.clock()

    def budget(self) -> int:
        """The largest requested cost worth sending: Shopify's single-query limit, or the bucket's
        size when that is smaller (a query larger than the bucket would never be let in)."""
        if self.status is None:
            return MAX_QUERY_COST
        return max(1, min(MAX_QUERY_COST, int(self.status.maximum)))

    def available_now(self) -> float | None:
        if self.status is None:
            return None
        regained = (self.clock() - self.seen_at) * self.status.restore_rate
        return min(self.status.maximum, self.status.available + regained)

    def wait_seconds(self, cost: int) -> float:
        """How long until the bucket holds ``cost`` (0: now, or nothing known yet)."""
        available = self.available_now()
        if self.status is None or available is None or available >= cost:
            return 0.0
        needed = min(cost, self.status.maximum) - available
        return min(self.max_wait_seconds, max(0.0, needed / self.status.restore_rate))

    async def admit(self, cost: int) -> None:
        """Wait (bounded) until ``cost`` fits, then count it as spent, so a concurrent caller
        of the same client waits its own turn instead of both getting throttled."""
        async with self._lock:
            wait = self.wait_seconds(cost)
            if wait > 0:
                self.waited_seconds += wait
                await anyio.sleep(wait)
            available = self.available_now()
            if self.status is not None and available is not None:
                self.status = ThrottleStatus(
                    self.status.maximum, max(0.0, available - cost), self.status.restore_rate
                )
                self.seen_at = self.clock()
