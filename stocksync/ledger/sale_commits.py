"""Group commit for sales: a fulfilment is acknowledged only once its ledger rows commit.

A sale (a fulfilment, a till sale that fulfils or sells) is written to the SQL ledger before it
is acknowledged (DESIGN rule 6). Each process has one :class:`SaleCommitter` per ledger. A sale
is queued with a future; on the next turn of the event loop the queue is written in one
transaction (a lone sale waits for nobody), with at most ``in_flight_max`` transactions at
once; sales that arrive while those run are written together by the next (rule 9). Each
caller's future resolves only after the transaction holding its rows committed.

The events come from the fulfilment's reply, not from the stream, so a sale reaches the ledger
even when ``OUTBOX_MAXLEN`` trimmed its entries first. Only the movements are written here (the
facts the sale must not lose); the reservation's ledger row follows when the ledger copy folds
the same events (idempotent: the event id is unique, so neither write duplicates the other).

Failures answer ``503`` and change nothing that a retry of the same call cannot complete: the
sale is already in Redis (idempotent), and the ledger copy writes its events later anyway.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter

import anyio.to_thread
import psycopg
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)

from stocksync.domain.errors import LedgerBusy, LedgerUnavailable
from stocksync.ledger.pg_sales import PostgresSales
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.store.outbox import OutboxEvent

# Few commits in flight make the next group as large as the load offers (PostgreSQL's commit
# costs about the same for one sale as for a hundred); two rather than one, so a sale arriving
# while a commit runs need not wait for all of it (measured: see the README's Performance).
# GROUP_MAX keeps one transaction short (the ledger copy may wait on its rows); QUEUE_MAX
# bounds what waits behind them.
GROUP_MAX = 256  # sales per transaction
QUEUE_MAX = 4096  # sales waiting for a commit, per process and ledger
IN_FLIGHT_MAX = 2  # transactions at once

# (sales in the commit, seconds it took, committed?) -> None; the metrics hook.
CommitObserver = Callable[[int, float, bool], None]


@dataclass(frozen=True)
class _Sale:
    events: tuple[OutboxEvent, ...]
    future: asyncio.Future[None]


class SaleCommitter:
    """Writes sales' movements to the ledger, the sales that arrive together in one commit."""

    def __init__(
        self,
        ledger: SqlLedger,
        *,
        group_max: int = GROUP_MAX,
        queue_max: int = QUEUE_MAX,
        in_flight_max: int = IN_FLIGHT_MAX,
        observe: CommitObserver | None = None,
    ) -> None:
        assert group_max >= 1
        assert queue_max >= 1
        assert in_flight_max >= 1
        self.ledger = ledger
        self.in_flight_max = in_flight_max
        self.group_max = group_max
        self.queue_max = queue_max
        self._observe = observe
        self._queue: deque[_Sale] = deque()
        self._in_flight = 0
        self._starting = False  # a commit task was created and has not taken its group yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        postgres = ledger.engine.dialect.name == "postgresql"
        self._postgres = PostgresSales(ledger.engine) if postgres else None

    @property
    def queued(self) -> int:
        """Sales waiting for a commit (not counting the one running)."""
        return len(self._queue)

    async def commit(self, events: Sequence[OutboxEvent]) -> None:
        """Return once ``events`` (one sale's) are committed to the ledger.

        Raises :class:`LedgerBusy` at once, queueing nothing, when ``queue_max`` sales already
        wait, and :class:`LedgerUnavailable` when the transaction holding them failed.
        """
        if not events:
            return
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): nothing of the old one carries
            self._loop, self._queue, self._in_flight, self._starting = loop, deque(), 0, False
        if len(self._queue) >= self.queue_max:
            raise LedgerBusy(
                f"{len(self._queue)} sales are waiting for the ledger (at most "
                f"{self.queue_max}); the sale is recorded in Redis, retry the same call"
            )
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append(_Sale(tuple(events), future))
        self._kick()
        await future

    def _kick(self) -> None:
        """Start a commit task while fewer than ``in_flight_max`` run and none is starting.

        The task takes its group when it first runs, on the next turn of the event loop, so
        the sales queued during this turn go together; nothing else waits for that turn.
        """
        if self._starting or not self._queue or self._in_flight >= self.in_flight_max:
            return
        assert self._loop is not None
        self._starting = True
        self._in_flight += 1
        task = self._loop.create_task(self._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        loop = self._loop
        self._starting = False
        size = min(len(self._queue), self.group_max)
        group = [self._queue.popleft() for _ in range(size)]
        self._kick()  # what is still queued may start another transaction beside this one
        try:
            if group:
                await self._commit_group(group)
        except BaseException:  # cancelled (shutdown): no queued caller may wait for ever
            _fail(list(self._queue), _unavailable)
            self._queue.clear()
            raise
        finally:
            if loop is self._loop:
                self._in_flight -= 1
                self._kick()

    async def _commit_group(self, group: list[_Sale]) -> None:
        started = perf_counter()
        try:
            await self._record(group)
        except SQLAlchemyError as exc:
            self._observed(len(group), started, ok=False)
            if len(group) > 1 and not _connection_failed(exc):
                # A row this database refuses (not an outage): commit each sale on its own, so
                # one bad sale cannot fail every sale that happens to share its transaction.
                for sale in group:
                    await self._commit_group([sale])
                return
            _fail(group, _unavailable)
        except Exception as exc:  # not the database's refusal: each caller gets the error
            self._observed(len(group), started, ok=False)
            failure = exc  # a name the closure may keep (``exc`` ends with this block)
            _fail(group, lambda: failure)
        except BaseException:
            _fail(group, _unavailable)
            raise
        else:
            self._observed(len(group), started, ok=True)
            for sale in group:
                if not sale.future.done():  # else its caller gave up; the rows are in all the same
                    sale.future.set_result(None)

    async def _record(self, group: list[_Sale]) -> None:
        unique = {e.event_id: e for sale in group for e in sale.events}
        # Stream order, as the ledger copy writes its batches: two transactions inserting the
        # same event ids then take their row locks in one order and cannot deadlock.
        events = sorted(unique.values(), key=lambda e: (e.namespace, e.order))
        if self._postgres is None:  # SQLite: in-process, a thread keeps the loop free
            await anyio.to_thread.run_sync(self.ledger.record_movements, events)
            return
        try:
            await self._postgres.insert(self.ledger.movement_rows(events))
        except psycopg.Error as exc:  # a failed connect too (OperationalError)
            raise _as_sqlalchemy(exc) from exc

    async def aclose(self) -> None:
        """Close the connections the committer keeps open (PostgreSQL)."""
        if self._postgres is not None:
            await self._postgres.close()

    def _observed(self, sales: int, started: float, *, ok: bool) -> None:
        if self._observe is not None:
            self._observe(sales, perf_counter() - started, ok)


def _as_sqlalchemy(exc: psycopg.Error) -> SQLAlchemyError:
    """A psycopg error as SQLAlchemy raises it for the same failure (what the committer tells
    apart: an outage fails the group, a refused row is retried sale by sale)."""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return OperationalError("sale commit", None, exc)
    return DBAPIError("sale commit", None, exc)


def _connection_failed(exc: SQLAlchemyError) -> bool:
    """The database was not reachable or dropped the connection (every sale would fail)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError)


def _unavailable() -> LedgerUnavailable:
    return LedgerUnavailable(
        "the sale is recorded in Redis but the ledger could not be written; retry the same "
        "call to get an acknowledgement (it will not be applied twice)"
    )


def _fail(group: list[_Sale], error: Callable[[], BaseException]) -> None:
    """Fail each waiting caller with its own ``error()``."""
    for sale in group:
        if not sale.future.done():
            sale.future.set_exception(error())
