"""A lease in Redis, so that a periodic job runs in one process of a deployment.

Every workers process (``stocksync serve`` with its workers, ``stocksync worker``, on any
host) runs the audit and the regression check loops; each tick, a loop runs its job only if it
holds the job's lease: ``SET key token NX PX ttl`` to take it, a token-checked ``PEXPIRE`` to
renew it (while the job runs, too) and a token-checked ``DEL`` to give it up when the process
stops. These are redis-py's :class:`~redis.asyncio.lock.Lock` operations. The holder renews at
every tick, so it keeps the job; when it dies, another process takes over once the lease
expires (``ttl``), or at once when it stopped cleanly.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

log = logging.getLogger(__name__)

LEASE_MIN_SECONDS = 30.0  # a dead holder's job is taken over within this, at the shortest


def lease_seconds(interval: float) -> float:
    """A lease that outlives the holder's pause between two ticks, with room to spare."""
    return max(2 * interval, LEASE_MIN_SECONDS)


class Lease:
    """One process's claim on a job's lease."""

    def __init__(self, client: Redis, key: str, ttl_seconds: float) -> None:
        self.key = key
        self.ttl_seconds = ttl_seconds
        self._lock = client.lock(key, timeout=ttl_seconds, blocking=False, thread_local=False)

    async def hold(self) -> bool:
        """Take the lease, or renew it when this process has it; False when another has it."""
        if self._lock.local.token is not None:
            try:
                return await self._lock.reacquire()
            except LockError:  # expired while we paused (and maybe taken): start over
                self._lock.local.token = None
        return bool(await self._lock.acquire(blocking=False))

    async def release(self) -> None:
        """Give the lease up (if this process still has it), so another takes over at once."""
        if self._lock.local.token is None:
            return
        try:
            await self._lock.release()
        except (LockError, RedisError) as exc:
            log.info("lease %s not released: %s", self.key, exc)
            self._lock.local.token = None


async def run_under_lease(
    lease: Lease | None, interval: float, job: Callable[[], Awaitable[None]]
) -> None:
    """Run ``job`` every ``interval`` seconds in the process that holds ``lease`` (every
    process when None), renewing the lease while the job runs; release it when cancelled."""
    try:
        while True:
            if lease is None:
                await job()
            elif await _held(lease):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_renew, lease)
                    await job()
                    tg.cancel_scope.cancel()
            await anyio.sleep(interval)
    finally:
        if lease is not None:
            with anyio.CancelScope(shield=True):
                await lease.release()


async def _held(lease: Lease) -> bool:
    try:
        return await lease.hold()
    except RedisError as exc:  # Redis away: no job can run now anyway; try at the next tick
        log.warning("lease %s not checked: %s", lease.key, exc)
        return False


async def _renew(lease: Lease) -> None:
    while True:
        await anyio.sleep(lease.ttl_seconds / 3)
        if not await _held(lease):
            log.warning("lease lost while its job ran: another process may run it too")
            return
