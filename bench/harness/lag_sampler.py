"""Samples the ledger writer's lag straight from Redis, every ``interval`` seconds, in a thread.

One Lua call reads, atomically: the server time, the ``ledger`` group's pending count, its lag
(the entries added after its last-delivered id: XINFO GROUPS ``lag``, Redis >= 7 and Valkey)
and its oldest pending entry (XPENDING). Lag events = pending + undelivered; lag seconds = now -
the ms timestamp (stream id) of the oldest entry not yet acknowledged (0 when there is none).
Where the server has no ``lag`` (Redis 6.2, or a stream with deleted entries past the group) the
undelivered entries are counted with a capped XRANGE; the stream length would over-count
between the writer's trims.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

from stocksync.workers.ledger_copy import GROUP

UNDELIVERED_CAP = 50_000  # beyond this the count is a lower bound (flagged)

LAG_LUA = """
local stream, group, cap = KEYS[1], ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
if redis.call('EXISTS', stream) == 0 then return {t[1], t[2], 0, 0, '', 0} end
local pending, last, lag = 0, '0-0', false
for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  if info['name'] == group then
    pending, last, lag = info['pending'], info['last-delivered-id'], info['lag'] or false
  end
end
local oldest = ''
if pending > 0 then oldest = redis.call('XPENDING', stream, group)[2] end
local undelivered, counted = lag, 0
if lag == false then
  local after = redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', cap)
  undelivered, counted = #after, 1
  if oldest == '' and #after > 0 then oldest = after[1][1] end
elseif oldest == '' and lag > 0 then
  local first = redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', 1)
  if #first > 0 then oldest = first[1][1] end
end
return {t[1], t[2], pending, undelivered, oldest, counted}
"""


@dataclass(frozen=True)
class LagSample:
    at: float  # time.monotonic() of the sample
    mode: str | None  # the label current when it was taken (None: between measurement slices)
    events: int
    seconds: float
    capped: bool  # counted by XRANGE up to UNDELIVERED_CAP: ``events`` is a lower bound


class LagSampler:
    def __init__(self, url: str, stream: str, interval: float = 0.5) -> None:
        self.client: Redis = Redis.from_url(url, decode_responses=True)
        self.script: Any = self.client.register_script(LAG_LUA)
        self.stream = stream
        self.interval = interval
        self.mode: str | None = None
        self.samples: list[LagSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lag-sampler", daemon=True)

    def sample(self) -> LagSample:
        seconds, micros, pending, undelivered, oldest, counted = self.script(
            keys=[self.stream], args=[GROUP, UNDELIVERED_CAP]
        )
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        age = max(0, now_ms - int(str(oldest).split("-")[0])) / 1000 if oldest else 0.0
        return LagSample(
            time.monotonic(),
            self.mode,
            int(pending) + int(undelivered),
            age,
            bool(counted) and int(undelivered) >= UNDELIVERED_CAP,
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.sample())

    def wait_caught_up(self, timeout: float) -> float | None:
        """Seconds until the lag reaches 0 events (polled every 0.1 s), or None on timeout."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.sample().events == 0:
                return time.monotonic() - started
            time.sleep(0.1)  # bounded poll of the writer's progress
        return None

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.close()
