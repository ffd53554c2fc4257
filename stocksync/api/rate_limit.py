"""Per-key request rate limits, answered in this process.

Why in-process and not in Redis (where ``limits`` could keep one shared counter): DESIGN's Redis
facts forbid a Redis round trip per request on the hot path, and a shared counter is one. So
each API process enforces its share of the configured rate (``rate / workers``) with the
maintained ``limits`` library on its in-memory storage; uvicorn spreads connections over the
workers, so a key's total stays near the configured rate. The window is a sliding-window
counter: O(1) memory per key and no double burst at a window's edge. Only authenticated key ids
are tracked (unknown keys are refused before this), so the number of tracked keys is bounded by
the active keys (``auth.repository.MAX_ACTIVE_KEYS``), and idle ones expire after two windows.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from stocksync.domain.errors import RateLimited


class KeyRateLimiter:
    """Allows each API key ``per_second / processes`` requests a second in this process."""

    def __init__(self, per_second: int, processes: int = 1) -> None:
        self.per_process = math.ceil(per_second / processes) if per_second > 0 else 0
        self._item = RateLimitItemPerSecond(self.per_process) if self.per_process else None
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage()) if self._item else None

    def check(self, key_id: str) -> None:
        """Count one request of ``key_id``; raises RateLimited when it is over its rate."""
        if self._item is None or self._limiter is None:
            return
        if self._limiter.hit(self._item, key_id):
            return
        reset_at, _ = self._limiter.get_window_stats(self._item, key_id)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(
            f"this key is over {self.per_process} requests a second; retry after {retry_after} s",
            retry_after=retry_after,
        )
