"""Importing one warehouse file: exactly once by content hash, streamed, applied in batches.

Rows are applied in batched script calls (``rows_per_call`` rows per call, one round trip),
each row exactly as a single count or delta would be: as-of rule, idempotency by (source,
source_event_id), its outbox event and its own refusal. A file re-processed after a crash
applies nothing twice (the rows come back as duplicates).

A transfer receipt file's rows are gathered per transfer while the file is read
(:mod:`connectors.warehouse.transfers`) and each transfer is received once the file ends, in
one store call with all its rows; a transfer received before with the same lines is a
replay (its rows count as duplicates), any other refusal rejects all its rows.
"""

from __future__ import annotations

import csv
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream
from rich.progress import Progress

from connectors.framework.commands import Adjust, ReceiveTransfer, SetCount
from connectors.framework.gateway import Applied, EngineGateway
from connectors.framework.metrics import connector_metrics
from connectors.framework.retry import is_transient, with_retries
from connectors.framework.state import ConnectorState
from connectors.warehouse.config import WarehouseConfig
from connectors.warehouse.files import RawRow, RowReader, UnknownFileKind, content_hash
from connectors.warehouse.mapping import (
    FileKind,
    RowRejected,
    TransferRow,
    to_command,
    to_transfer_row,
)
from connectors.warehouse.transfers import TransferReceipts
from stocksync.domain.errors import NotFound, StockSyncError
from stocksync.plugins import EngineContext

RowCommand = SetCount | Adjust
Mapped = RowCommand | TransferRow | RowRejected
READ_AHEAD_BATCHES = 1  # mapped batches waiting while one is applied (bounds memory)
Outcome = Applied | StockSyncError


@dataclass
class FileSummary:
    """What importing one file did; ``counts()`` is stored in ``connector_files.summary``."""

    name: str
    kind: str = "unknown"
    rows: int = 0
    applied: int = 0
    stale: int = 0
    duplicate: int = 0
    rejected: int = 0
    seconds: float = 0.0
    duplicate_of: str | None = None  # the whole file was processed before, under this name
    moved_to: Path | None = None
    rejects: Path | None = None

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "applied": self.applied,
            "stale": self.stale,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "milliseconds": round(self.seconds * 1000),
        }

    def line(self) -> str:
        if self.duplicate_of is not None:
            return f"{self.name}: duplicate of {self.duplicate_of!r}, skipped"
        text = (
            f"{self.name}: {self.kind}, {self.rows} rows: {self.applied} applied, "
            f"{self.stale} stale, {self.duplicate} duplicate, {self.rejected} rejected "
            f"in {self.seconds:.2f} s"
        )
        return text + (f"; rejects in {self.rejects}" if self.rejects else "")


@dataclass
class RejectsReport:
    """``<file>.rejects.csv``: line number, reason and the raw row; created on first reject."""

    path: Path
    pending: list[tuple[int, str, str]] = field(default_factory=list)
    written: int = 0

    def add(self, line: int, reason: str, raw: str) -> None:
        self.pending.append((line, reason, raw))

    def flush(self) -> None:
        if not self.pending:
            return
        new = self.written == 0
        with self.path.open("w" if new else "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["line", "reason", "raw"])
            writer.writerows(self.pending)
        self.written += len(self.pending)
        self.pending.clear()


@dataclass
class Batch:
    items: list[tuple[RawRow, Mapped]]
    offset: int  # bytes of the file read so far (for the progress bar)


class FileImporter:
    """Imports files for one connector name into the engine of ``ctx``."""

    def __init__(self, ctx: EngineContext, config: WarehouseConfig, name: str) -> None:
        self.config = config
        self.name = name
        self.gateway = EngineGateway(ctx)
        self.state = ConnectorState(ctx.engine, name)
        self.metrics = connector_metrics(ctx.registry)
        self.backoff = config.retry.backoff()

    async def import_file(self, path: Path, progress: Progress | None = None) -> FileSummary:
        """Apply ``path`` once (by content), write its rejects, move it to the processed dir."""
        started = time.perf_counter()
        summary = FileSummary(path.name)
        digest = await anyio.to_thread.run_sync(content_hash, path)
        seen = await anyio.to_thread.run_sync(self.state.processed, digest)
        destination = self._destination(path, digest)
        if seen is not None:
            summary.duplicate_of = seen.name
        else:
            report = RejectsReport(destination.with_name(destination.name + ".rejects.csv"))
            report.path.unlink(missing_ok=True)  # left by a run that crashed mid-file
            await self._import_rows(path, summary, report, progress)
            summary.seconds = time.perf_counter() - started
            summary.rejects = report.path if report.written else None
            await anyio.to_thread.run_sync(
                self.state.mark_processed, digest, path.name, summary.counts()
            )
        await anyio.to_thread.run_sync(shutil.move, path, destination)
        summary.moved_to = destination
        return summary

    def _destination(self, path: Path, digest: str) -> Path:
        self.config.processed.mkdir(parents=True, exist_ok=True)
        target = self.config.processed / path.name
        if target.exists():  # a daily export reuses its name: keep both, tell them apart
            target = target.with_name(f"{path.stem}.{digest[:12]}{path.suffix}")
        return target

    async def _import_rows(
        self, path: Path, summary: FileSummary, report: RejectsReport, progress: Progress | None
    ) -> None:
        with path.open("rb") as fh:
            try:
                reader = await anyio.to_thread.run_sync(RowReader, fh, path.suffix.lower())
            except UnknownFileKind as exc:
                report.add(1, f"unknown_kind: {exc}", "")
                summary.rejected += 1
                self.metrics.outcome(self.name, "rejected")
                await anyio.to_thread.run_sync(report.flush)
                return
            summary.kind = reader.kind.value
            task = None if progress is None else progress.add_task(path.name, total=_size(path))
            # The next batch is read and mapped while this one is applied: at most
            # READ_AHEAD_BATCHES wait in between, so memory stays flat whatever the file's size.
            send, receive = anyio.create_memory_object_stream[Batch](READ_AHEAD_BATCHES)
            failed: list[Exception] = []  # raised as itself, not inside an ExceptionGroup
            transfers = TransferReceipts() if reader.kind is FileKind.TRANSFER_RECEIPT else None
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read_batches, iter(reader), fh, reader.kind, send, failed)
                try:
                    async with receive:
                        async for batch in receive:
                            await self._apply_batch(batch, summary, report, transfers)
                            await anyio.to_thread.run_sync(report.flush)
                            if progress is not None and task is not None:
                                progress.update(task, completed=batch.offset)
                except Exception as exc:
                    failed.append(exc)
                    tg.cancel_scope.cancel()
            if failed:
                raise failed[0]
            if transfers is not None:
                await self._receive_transfers(transfers, summary, report)
                await anyio.to_thread.run_sync(report.flush)
            if progress is not None and task is not None:
                progress.update(task, completed=_size(path))

    async def _read_batches(
        self,
        rows: Iterator[RawRow],
        fh: BinaryIO,
        kind: FileKind,
        send: MemoryObjectSendStream[Batch],
        failed: list[Exception],
    ) -> None:
        async with send:
            try:
                while batch := await anyio.to_thread.run_sync(self._next_batch, rows, fh, kind):
                    await send.send(batch)
            except Exception as exc:  # reading failed (I/O): the applying side stops too
                failed.append(exc)

    def _next_batch(self, rows: Iterator[RawRow], fh: BinaryIO, kind: FileKind) -> Batch | None:
        """Up to ``batch_rows`` rows, mapped (runs in a worker thread: parsing is blocking)."""
        items: list[tuple[RawRow, Mapped]] = []
        for row in rows:
            items.append((row, self._map(row, kind)))
            if len(items) >= self.config.batch_rows:
                break
        if not items:
            return None
        return Batch(items, fh.tell())

    def _map(self, row: RawRow, kind: FileKind) -> Mapped:
        if row.error is not None:
            return row.error
        assert row.fields is not None
        try:
            if kind is FileKind.TRANSFER_RECEIPT:
                return to_transfer_row(row.fields)
            return to_command(kind, row.fields, self.config.source)
        except RowRejected as exc:
            return exc

    async def _apply_batch(
        self,
        batch: Batch,
        summary: FileSummary,
        report: RejectsReport,
        transfers: TransferReceipts | None = None,
    ) -> None:
        commands: list[tuple[RawRow, RowCommand]] = []
        for row, mapped in batch.items:
            if isinstance(mapped, TransferRow):
                assert transfers is not None
                refused = transfers.add(row, mapped)  # received when the file ends
                if refused is not None:
                    self._reject(report, summary, row, str(refused))
            elif isinstance(mapped, RowRejected):
                self._reject(report, summary, row, str(mapped))
                if transfers is not None:  # its transfer is not received without it
                    transfers.reject(row)
            else:
                commands.append((row, mapped))
        tally: Counter[str] = Counter()  # outcomes of the batch, counted once per batch
        # A repeated event id inside one batch waits for the first (first row in the file wins).
        for segment in _without_repeats(commands):
            outcomes = await self._apply_all([cmd for _, cmd in segment])
            for (row, _), outcome in zip(segment, outcomes, strict=True):
                if isinstance(outcome, StockSyncError):
                    self._reject(report, summary, row, _refusal(outcome))
                else:
                    tally[outcome.value] += 1
            if segment:
                last = segment[-1][1]
                self.metrics.observe_lag(
                    self.name, last.as_of_ms if isinstance(last, SetCount) else last.occurred_at_ms
                )
        for value, n in tally.items():
            setattr(summary, value, getattr(summary, value) + n)
            self.metrics.outcome(self.name, value, n)
            summary.rows += n

    async def _receive_transfers(
        self, transfers: TransferReceipts, summary: FileSummary, report: RejectsReport
    ) -> None:
        """Receive each transfer of the file (``concurrency`` at once), counting its rows."""
        work = iter(list(transfers.receipts()))
        tally: Counter[str] = Counter()

        async def worker() -> None:
            for rows, receipt in work:
                outcome = (
                    receipt if isinstance(receipt, RowRejected) else await self._receive(receipt)
                )
                if isinstance(outcome, Applied):
                    tally[outcome.value] += len(rows)
                    continue
                why = str(outcome) if isinstance(outcome, RowRejected) else _refusal(outcome)
                for row in rows:
                    self._reject(report, summary, row, why)

        async with anyio.create_task_group() as tg:
            for _ in range(min(self.config.concurrency, len(transfers.pending))):
                tg.start_soon(worker)
        for value, n in tally.items():
            setattr(summary, value, getattr(summary, value) + n)
            self.metrics.outcome(self.name, value, n)
            summary.rows += n

    async def _receive(self, receipt: ReceiveTransfer) -> Outcome:
        try:
            return await with_retries(
                lambda: self.gateway.apply(receipt),
                self.backoff,
                on_retry=lambda _exc: self.metrics.outcome(self.name, "retried"),
            )
        except StockSyncError as exc:  # unknown transfer, more than shipped, cancelled
            if is_transient(exc):
                raise
            return exc

    def _reject(self, report: RejectsReport, summary: FileSummary, row: RawRow, why: str) -> None:
        report.add(row.line, why, row.text)
        summary.rejected += 1
        summary.rows += 1
        self.metrics.outcome(self.name, "rejected")

    async def _apply_all(self, commands: list[RowCommand]) -> list[Outcome]:
        """Apply in chunks of ``rows_per_call`` (one batched script call each), at most
        ``concurrency`` in flight; results in input order."""
        size = self.config.rows_per_call
        chunks = [commands[i : i + size] for i in range(0, len(commands), size)]
        results: list[list[Outcome]] = [[] for _ in chunks]
        work = iter(enumerate(chunks))

        async def worker() -> None:
            for index, chunk in work:
                results[index] = await self._apply_chunk(chunk)

        async with anyio.create_task_group() as tg:
            for _ in range(min(self.config.concurrency, len(chunks))):
                tg.start_soon(worker)
        return [outcome for chunk in results for outcome in chunk]

    async def _apply_chunk(self, chunk: list[RowCommand]) -> list[Outcome]:
        """One batched call for the chunk (retried whole: every row in it is idempotent, so
        rows a lost reply had applied come back as duplicates); a row refused for a reason
        that may pass (a frozen SKU) is retried on its own."""
        outcomes = await with_retries(
            lambda: self.gateway.stock_batch(chunk),
            self.backoff,
            on_retry=lambda _exc: self.metrics.outcome(self.name, "retried"),
        )
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, StockSyncError) and is_transient(outcome):
                outcomes[i] = await self._apply_one(chunk[i])
        return outcomes

    async def _apply_one(self, command: RowCommand) -> Outcome:
        try:
            return await with_retries(
                lambda: self.gateway.apply(command),
                self.backoff,
                on_retry=lambda _exc: self.metrics.outcome(self.name, "retried"),
            )
        except StockSyncError as exc:  # unknown location, a conflicting re-use of an id
            if is_transient(exc):
                raise
            return exc


def _refusal(exc: StockSyncError) -> str:
    """A refused row's reason: its code (``unknown_<resource>`` for what does not exist)."""
    code = exc.code
    if isinstance(exc, NotFound):
        code = f"unknown_{exc.extra.get('resource') or 'location'}"
    return f"{code}: {exc.detail}"


def _size(path: Path) -> int:
    return path.stat().st_size


def _without_repeats(
    commands: list[tuple[RawRow, RowCommand]],
) -> Iterator[list[tuple[RawRow, RowCommand]]]:
    segment: list[tuple[RawRow, RowCommand]] = []
    ids: set[str] = set()
    for item in commands:
        if item[1].source_event_id in ids:
            yield segment
            segment, ids = [], set()
        segment.append(item)
        ids.add(item[1].source_event_id)
    yield segment
