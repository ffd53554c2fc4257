"""The ledger copy: the worker that copies an outbox stream into the SQL ledger (DESIGN rule 5).

One :class:`LedgerCopy` per stock domain (each domain has its own stream, in its own slot; see
``stocksync.workers.ledger_domains``); its batches carry the domain's ledger namespace, so
event ids and per-SKU seqs stay the domain's own.

Entries are read through the consumer group ``ledger``, written to SQL in one transaction per
batch (in a worker thread) and acknowledged only after the commit, so a crash between the two
re-delivers them and the idempotent write makes that harmless. Entries a dead consumer left
pending are claimed after ``claim_idle_ms``. The stream is then trimmed below the oldest entry
that any consumer group still needs, never below an unacknowledged one.

The batch size adapts to the backlog: a read that comes back full doubles the next one (up to
``batch_max``: fewer, larger transactions while behind), a read under a quarter full halves it
(down to ``batch_min``: small batches, low latency, when caught up).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.metrics import Metrics
from stocksync.store.outbox import Entry, Outbox

log = logging.getLogger(__name__)

GROUP = "ledger"
MAX_BACKOFF_SECONDS = 30.0
MAX_BATCHES_PER_PASS = 8  # then claim, trim and report the lag, even while behind


@dataclass
class LedgerCopy:
    """One consumer of the ``ledger`` group."""

    outbox: Outbox
    ledger: SqlLedger
    metrics: Metrics
    consumer: str
    batch: int = 500  # entries per read now; adapts between the bounds below
    batch_min: int = 50
    batch_max: int = 5_000
    claim_idle_ms: int = 30_000
    dead_group_idle_ms: int = 3_600_000

    # Shared by the copies of one process: how many may block in XREADGROUP at once (each
    # holds a pooled connection while it waits). A copy that finds none free reads without
    # blocking and, when nothing came, waits as long as the block would have.
    blocking: anyio.CapacityLimiter | None = None

    async def read(self, start: str, block_ms: int | None = None) -> list[Entry]:
        """New entries (``start`` '>') or this consumer's own pending ones ('0')."""
        if block_ms is not None and self.blocking is not None:
            try:
                self.blocking.acquire_nowait()
            except anyio.WouldBlock:
                entries = await self._read(start, None)
                if not entries:
                    await anyio.sleep(block_ms / 1000)
                return entries
            try:
                return await self._read(start, block_ms)
            finally:
                self.blocking.release()
        return await self._read(start, block_ms)

    async def _read(self, start: str, block_ms: int | None) -> list[Entry]:
        entries = await self.outbox.read_group(
            GROUP, self.consumer, start=start, count=self.batch, block_ms=block_ms
        )
        self.adapt(len(entries))
        return entries

    def adapt(self, got: int) -> None:
        """The next read's size after a read that returned ``got`` entries."""
        if got >= self.batch:
            self.batch = min(self.batch * 2, self.batch_max)
        elif got < self.batch // 4:
            self.batch = max(self.batch // 2, self.batch_min)
        self.metrics.ledger_batch_limit.set(self.batch)

    async def claim(self, cursor: str) -> tuple[str, list[Entry], int]:
        """Entries idle at other consumers for ``claim_idle_ms``; the next cursor with them,
        and how many claimed entries were gone (deleted before they reached the ledger; the
        server no longer lists them as pending)."""
        cursor, entries, deleted = await self.outbox.claim(
            GROUP, self.consumer, idle_ms=self.claim_idle_ms, cursor=cursor, count=self.batch
        )
        if deleted:
            log.error(
                "claimed outbox entries were deleted before they reached the ledger: %s",
                ", ".join(deleted),
            )
        return cursor, entries, len(deleted)

    async def process(self, entries: Sequence[Entry]) -> int:
        """Record ``entries`` in SQL, then acknowledge them; returns how many were acknowledged.

        Raises (acknowledging nothing) when the SQL write fails.
        """
        if not entries:
            return 0
        gone = [i for i, f in entries if not f]
        if gone:  # trimmed (MAXLEN) before they were written: nothing left to record
            log.error("outbox entries deleted before reaching the ledger: %s", gone[:10])
        events = len(entries) - len(gone)
        batch = {self.outbox.namespace: entries}
        written = await anyio.to_thread.run_sync(self.ledger.record_entries, batch) if events else 0
        await self.outbox.ack(GROUP, [i for i, _ in entries])
        self.metrics.ledger_events_written.inc(events)
        self.metrics.ledger_batch_size.observe(events)
        log.debug("ledger: %d events recorded, %d new movements", events, written)
        return len(entries)

    async def trim_and_measure(self) -> None:
        """Trim what every consumer group has acknowledged; report this group's lag."""
        report = await self.outbox.trim_acknowledged(GROUP, self.dead_group_idle_ms)
        self.metrics.outbox_dead_groups.set(len(report.dead_groups))
        if report.dead_groups:
            log.warning("outbox groups idle too long, trimmed past: %s", report.dead_groups)
        if report.lag is not None:
            self.metrics.domains.set_lag(self.outbox.domain, report.lag.events, report.lag.seconds)

    async def redo_own_pending(self) -> int:
        """At start and after a failure: (re)create the group, then this consumer's pending
        entries before anything new."""
        await self.outbox.create_group(GROUP)
        done = 0
        while entries := await self.read("0"):
            done += await self.process(entries)
        return done

    async def drain_once(self) -> int:
        """Process everything available now, without blocking: this consumer's pending
        entries, entries idle at other consumers, then new ones. Trims the stream and reports
        the lag; returns how many entries were acknowledged. Errors propagate.
        """
        done = await self.redo_own_pending()
        cursor = "0-0"
        while True:
            cursor, entries, gone = await self.claim(cursor)
            done += gone + await self.process(entries)
            if cursor == "0-0":
                break
        done += await self.copy_new(max_batches=None)
        await self.trim_and_measure()
        return done

    async def _read_into(self, out: list[Entry]) -> None:
        out.extend(await self.read(">"))

    async def copy_new(self, max_batches: int | None, block_ms: int | None = None) -> int:
        """New entries, batch after batch, each batch's read overlapping the previous one's
        SQL write (which runs in a thread): while behind, Redis and the database work at once.
        Stops when a read comes back empty or after ``max_batches``; returns how many entries
        were acknowledged. A read ahead of a failed write leaves its entries pending to this
        consumer, redone first on the next pass."""
        done = 0
        entries = await self.read(">", block_ms)
        batches = 0
        while entries and (max_batches is None or batches < max_batches):
            batches += 1
            last = max_batches is not None and batches >= max_batches
            ahead: list[Entry] = []
            try:
                async with anyio.create_task_group() as tg:
                    if not last:
                        tg.start_soon(self._read_into, ahead)
                    done += await self.process(entries)
            except BaseExceptionGroup as group:  # the failure itself, as without the overlap
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
            entries = ahead
        return done

    async def run(self, block_ms: int = 1000, retry_initial_seconds: float = 0.5) -> None:
        """Copy the outbox into the ledger forever. A failed pass (SQL or Redis) is logged,
        counted and retried with exponential back-off; its entries stay pending,
        unacknowledged, and are re-read from this consumer's pending list before anything new.
        """
        backoff = retry_initial_seconds
        recovering = True
        cursor = "0-0"
        while True:
            try:
                if recovering:
                    await self.redo_own_pending()
                    recovering = False
                cursor, entries, _ = await self.claim(cursor)
                await self.process(entries)
                await self.copy_new(MAX_BATCHES_PER_PASS, block_ms)
                await self.trim_and_measure()
                backoff = retry_initial_seconds
            except Exception as exc:  # keep copying after any failure; the lag metric shows it
                self.metrics.ledger_errors.inc()
                log.warning(
                    "ledger copy of domain %s failed: %r; retrying in %.1fs",
                    self.outbox.domain,
                    exc,
                    backoff,
                    exc_info=True,
                )
                recovering = True
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
