"""Per-key request rate limits, answered in this process.

Why in-process and not in Redis: DESIGN's Redis facts forbid a Redis round trip per request on
the hot path, and a shared counter is one. So each API process enforces its share of the
configured rate (``rate / workers``); uvicorn spreads connections over the workers, so a key's
total stays near the configured rate. The window is a sliding-window counter (as the ``limits``
library's): the count of the current second plus the previous second's count weighted by the
share of it still inside the last second. O(1) memory per key and no double burst at a window's
edge. It is a few dict operations per request, where ``limits``' memory storage cost ~9 µs and
started a timer thread to expire its keys. Only authenticated key ids are tracked (unknown keys
are refused before this), so the number of tracked keys is bounded by the active keys
(``auth.repository.MAX_ACTIVE_KEYS``), and idle ones are dropped once a second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from stocksync.domain.errors import RateLimited

WINDOW_SECONDS = 1


class KeyRateLimiter:
    """Allows each API key ``per_second / processes`` requests a second in this process."""

    def __init__(
        self, per_second: int, processes: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_process = math.ceil(per_second / processes) if per_second > 0 else 0
        self._clock = clock
        # key id -> (window index, count in that window, count in the window before it)
        self._windows: dict[str, tuple[int, int, int]] = {}
        self._swept = 0  # the window of the last sweep of idle keys

    def check(self, key_id: str) -> None:
        """Count one request of ``key_id``; raises RateLimited when it is over its rate."""
        if not self.per_process:
            return
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        if window != self._swept:
            self._sweep(window)
        current, previous = self._counts(key_id, window)
        elapsed_share = (now - window * WINDOW_SECONDS) / WINDOW_SECONDS
        if previous * (1 - elapsed_share) + current + 1 > self.per_process:
            retry_after = max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
            raise RateLimited(
                f"this key is over {self.per_process} requests a second; "
                f"retry after {retry_after} s",
                retry_after=retry_after,
            )
        self._windows[key_id] = (window, current + 1, previous)

    def _counts(self, key_id: str, window: int) -> tuple[int, int]:
        """(this window's count, the previous window's count) of a key."""
        found = self._windows.get(key_id)
        if found is None:
            return 0, 0
        seen, count, before = found
        if seen == window:
            return count, before
        return 0, count if seen == window - 1 else 0

    def _sweep(self, window: int) -> None:
        """Forget keys idle for two windows: they count nothing any more."""
        self._swept = window
        idle = [key for key, (seen, _, _) in self._windows.items() if seen < window - 1]
        for key in idle:
            del self._windows[key]

    @property
    def tracked_keys(self) -> int:
        return len(self._windows)
