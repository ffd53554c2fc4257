"""Group commit: operations that arrive together go to Redis in one ``batch`` FCALL.

Each process has one :class:`Batcher` per store. An operation is queued with a future. When no
batch is in flight the queue is flushed on the next turn of the event loop (a lone request
waits for nobody); while one is in flight, arrivals gather and go as soon as it returns. A
batch holds at most ``batch_max`` operations and the queue at most ``queue_max``: a full
queue refuses at once with :class:`StoreBusy` (503, Retry-After), queueing nothing.

A future is resolved only when the FCALL holding its operation returned, so it is as durable
as the server's ``appendfsync`` makes one command (one fsync per batch under ``always``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stocksync.domain.errors import StoreBusy

# Chosen, not yet tuned by the bench: 128 keeps one FCALL of reserves to a few ms of Redis time
# (other clients wait while it runs); one batch in flight makes the next batch as large as the
# load offers, and keeps batches of one process in order.
BATCH_MAX = 128  # operations per FCALL
QUEUE_MAX = 4096  # operations waiting for a batch, per process and store
IN_FLIGHT_MAX = 1  # batches on the wire at once


@dataclass(frozen=True)
class Operation:
    """One queued operation: its name, its own arguments, who acts, and its future."""

    name: str
    args: tuple[str | int, ...]
    actor: str
    future: asyncio.Future[Any]


SendBatch = Callable[[Sequence[Operation]], Awaitable[list[Any]]]


class Batcher:
    """Queues operations and sends them in batches with ``send`` (one FCALL each)."""

    def __init__(
        self,
        send: SendBatch,
        *,
        batch_max: int = BATCH_MAX,
        queue_max: int = QUEUE_MAX,
        in_flight_max: int = IN_FLIGHT_MAX,
    ) -> None:
        assert batch_max >= 1
        assert queue_max >= 1
        assert in_flight_max >= 1
        self._send = send
        self.batch_max = batch_max
        self.queue_max = queue_max
        self.in_flight_max = in_flight_max
        self._queue: deque[Operation] = deque()
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(
        self, calls: Sequence[tuple[str, Sequence[str | int]]], actor: str
    ) -> list[asyncio.Future[Any]]:
        """Queue ``calls`` (all or none) in order; one future per call."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): nothing of the old one carries
            self._loop, self._queue, self._in_flight, self._scheduled = loop, deque(), 0, False
        if len(self._queue) + len(calls) > self.queue_max:
            raise StoreBusy(
                f"{len(self._queue)} operations are waiting for Redis (at most "
                f"{self.queue_max}); nothing was changed, retry shortly"
            )
        futures = []
        for name, args in calls:
            future: asyncio.Future[Any] = loop.create_future()
            self._queue.append(Operation(name, tuple(args), actor, future))
            futures.append(future)
        self._kick()
        return futures

    def _kick(self) -> None:
        if self._scheduled or not self._queue or self._in_flight >= self.in_flight_max:
            return
        assert self._loop is not None
        self._scheduled = True
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        assert self._loop is not None
        while self._queue and self._in_flight < self.in_flight_max:
            size = min(len(self._queue), self.batch_max)
            ops = [self._queue.popleft() for _ in range(size)]
            self._in_flight += 1
            task = self._loop.create_task(self._run(ops))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, ops: list[Operation]) -> None:
        loop = self._loop
        try:
            replies = await self._send(ops)
        except BaseException as exc:  # the connection failed: each caller gets the error
            for op in ops:
                if not op.future.done():
                    op.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for op, reply in zip(ops, replies, strict=True):
                if op.future.done():  # its caller gave up (cancelled); it ran all the same
                    continue
                if isinstance(reply, Exception):
                    op.future.set_exception(reply)
                else:
                    op.future.set_result(reply)
        finally:
            if loop is self._loop:
                self._in_flight -= 1
                self._kick()
