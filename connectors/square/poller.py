"""Polling Square from a checkpoint: its inventory changes page by page, then the counts that
changed.

Till sales: before a page of changes is applied, the orders behind its till sales are read in
one call and the holds they collect looked up (:mod:`connectors.square.pickups`).

Changes: the checkpoint's ``updated_after`` is the sweep's watermark (Square's
``updated_after`` filters on ``created_at``), ``cursor`` Square's cursor for the next page of
the sweep, ``high`` the newest ``created_at`` seen so far. It is saved after each page is
applied, never before, so a crash in between only re-applies that page, which is idempotent by
each change's id. A change that keeps failing transiently stops the sweep before the
checkpoint moves. When a sweep ends, the next one starts ``overlap_seconds`` before the newest
``created_at``. A saved cursor Square refuses as ``INVALID_CURSOR`` (a page's cursor has a
limited lifespan) starts the sweep again from its watermark, once.

Counts: Square's changes filter does not take ``TRANSFER``, and no other documented query
lists transfers; but a transfer changes the counts at both locations, and
BatchRetrieveInventoryCounts with ``updated_after`` returns "only counts that have changed
since that time" (Square's reference: for a "sync" operation). So each sweep then reads the
IN_STOCK counts changed since ``counts_after`` and applies them as absolute counts as of
``calculated_at``: the as-of rule keeps every sale that occurred after that. The watermark
moves, less the same overlap, when the pass ends; a re-read count is a duplicate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.framework.commands import Adjust, Command, SetCount, Unmappable
from connectors.framework.config import IdMap
from connectors.framework.pipeline import DeadLettered, Pipeline, occurred_ms
from connectors.framework.retry import with_retries
from connectors.square.client import SquareClient, SquareRefused
from connectors.square.config import SquareConfig
from connectors.square.mapping import created_at, map_change, map_polled_count
from connectors.square.pickups import HoldFinder
from stocksync.domain.errors import StockSyncError

log = logging.getLogger(__name__)
MAX_REMEMBERED_LETTERS = 10_000
INVALID_CURSOR = "INVALID_CURSOR"  # Square's ErrorCode for a cursor it no longer takes
COUNT = "count"  # the dead-letter kind of a polled count


@dataclass(frozen=True)
class Checkpoint:
    updated_after: str
    cursor: str | None = None
    high: str | None = None
    counts_after: str | None = None  # None: the counts pass starts at ``start_at``

    @classmethod
    def parse(cls, text: str | None, start_at: str) -> Checkpoint:
        if not text:
            return cls(start_at)
        data = json.loads(text)
        return cls(
            data["updated_after"], data.get("cursor"), data.get("high"), data.get("counts_after")
        )

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class SweepSummary:
    """What one sweep did: pages of changes read, changes seen, and each change's outcome
    (applied, stale, duplicate for the first command of a change; ignored; dead_letter); then
    the counts the counts pass read and theirs."""

    pages: int = 0
    changes: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    counts: int = 0
    count_outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def count_count(self, outcome: str) -> None:
        self.count_outcomes[outcome] = self.count_outcomes.get(outcome, 0) + 1


def _later(a: str | None, b: str | None) -> str | None:
    """The later of two RFC 3339 timestamps; an unreadable one counts as absent."""
    ma, mb = _moment(a), _moment(b)
    if ma is None or mb is None:
        return a if mb is None and ma is not None else (b if mb is not None else None)
    return a if ma >= mb else b


def _moment(text: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Poller:
    """Sweeps the changes created since the checkpoint into the engine."""

    def __init__(
        self, config: SquareConfig, ids: IdMap, client: SquareClient, pipeline: Pipeline
    ) -> None:
        self.config = config
        self.ids = ids
        self.client = client
        self.pipeline = pipeline
        self.locations = config.polled_locations(ids)
        self.rules = config.bucket_rules()
        self.holds = (
            HoldFinder(client, pipeline.ctx.store, ids, config.reservation_prefix)
            if config.hold_codes_from_orders
            else None
        )
        self._lettered: set[str] = set()  # payloads already dead-lettered by this process

    async def sweep(self) -> SweepSummary:
        """Follow Square's cursor until the last page; the checkpoint moves after each page."""
        summary = SweepSummary()
        point = Checkpoint.parse(await self.pipeline.checkpoint(), self.config.start_at)
        restarted = False
        while True:
            try:
                page = await self.client.changes_page(
                    self.locations, point.updated_after, point.cursor
                )
            except SquareRefused as exc:
                if restarted or not point.cursor or INVALID_CURSOR not in exc.codes:
                    raise
                # A saved cursor outlived its page (Square: pages have "a limited lifespan"):
                # read the sweep again from its watermark; what was applied is a duplicate.
                log.warning("square refused the saved cursor (%s); sweeping again", exc)
                point, restarted = replace(point, cursor=None), True
                continue
            summary.pages += 1
            high = point.high
            # The holds its till sales collect, before any of them is applied: a sale is keyed
            # with the hold it names, so it must name the same one whenever it is re-read.
            holds = await self.holds.holds(page.changes) if self.holds else {}
            await self._apply_page(page.changes, summary, holds)  # a transient failure keeps
            for raw in page.changes:  # the checkpoint where it was
                high = _later(high, created_at(raw))
            if page.cursor:
                point = replace(point, cursor=page.cursor, high=high)
            else:
                watermark = self._next_watermark(point.updated_after, high)
                point = replace(point, updated_after=watermark, cursor=None, high=None)
            await self.pipeline.save_checkpoint(point.dump())
            if not page.cursor:
                await self._sweep_counts(point, summary)
                return summary

    async def _sweep_counts(self, point: Checkpoint, summary: SweepSummary) -> None:
        """The IN_STOCK counts changed since the counts watermark, page by page (Square sends
        the newest first); the watermark moves when the last page is applied."""
        after = point.counts_after or self.config.start_at
        high: str | None = None
        cursor: str | None = None
        while True:
            page = await self.client.counts_page(self.locations, after, cursor)
            await self._apply_counts(page.counts, summary)
            for raw in page.counts:
                stamp = raw.get("calculated_at")
                high = _later(high, stamp if isinstance(stamp, str) else None)
            cursor = page.cursor
            if not cursor:
                break
        point = replace(point, counts_after=self._next_watermark(after, high))
        await self.pipeline.save_checkpoint(point.dump())

    def _next_watermark(self, updated_after: str, high: str | None) -> str:
        newest = _moment(high)
        if newest is None:
            return updated_after
        start = _rfc3339(newest - timedelta(seconds=self.config.overlap_seconds))
        return _later(updated_after, start) or start

    async def _apply_page(
        self, raws: list[dict[str, Any]], summary: SweepSummary, holds: Mapping[str, str]
    ) -> None:
        """A page of changes in order: runs of counts and deltas go in one batched call each;
        a till sale (or a change with no stock command) is applied on its own between them."""
        run: list[tuple[dict[str, Any], str, list[SetCount | Adjust]]] = []
        for raw in raws:
            summary.changes += 1
            text = json.dumps(raw, sort_keys=True)
            try:
                commands = map_change(
                    raw, self.ids, self.config.reservation_prefix, holds, self.rules
                )
            except Unmappable as exc:
                await self._dead_letter(raw, str(exc), text, summary)
                continue
            if not commands:  # a move between states that are not on hand
                summary.count("ignored")
                self.pipeline.metrics.outcome(self.pipeline.name, "ignored")
                continue
            stock = [c for c in commands if isinstance(c, SetCount | Adjust)]
            if len(stock) == len(commands):
                run.append((raw, text, stock))
                continue
            await self._apply_run(run, summary)
            run = []
            await self._apply_alone(raw, text, commands, summary)
        await self._apply_run(run, summary)

    async def _apply_run(
        self, run: list[tuple[dict[str, Any], str, list[SetCount | Adjust]]], summary: SweepSummary
    ) -> None:
        """Changes whose commands are all counts and deltas: one batched call (retried whole:
        each row is idempotent); a change with a refused command goes through the pipeline on
        its own (retried or dead-lettered; its applied commands come back as duplicates)."""
        if not run:
            return
        commands = [command for _, _, stock in run for command in stock]
        metrics, name = self.pipeline.metrics, self.pipeline.name
        results = await with_retries(
            lambda: self.pipeline.gateway.stock_batch(commands),
            self.pipeline.backoff,
            on_retry=lambda _exc: metrics.outcome(name, "retried"),
        )
        at = 0
        for raw, text, stock in run:
            mine = results[at : at + len(stock)]
            at += len(stock)
            if any(isinstance(r, StockSyncError) for r in mine):
                await self._apply_alone(raw, text, list(stock), summary)
                continue
            for command, result in zip(stock, mine, strict=True):
                assert not isinstance(result, StockSyncError)
                metrics.outcome(name, result.value)
                metrics.observe_lag(name, occurred_ms(command))
            first = mine[0]
            assert not isinstance(first, StockSyncError)
            summary.count(first.value)

    async def _apply_alone(
        self, raw: dict[str, Any], text: str, commands: Sequence[Command], summary: SweepSummary
    ) -> None:
        try:
            outcomes = await self.pipeline.apply(f"change:{raw.get('type')}", text, commands)
        except DeadLettered:
            summary.count("dead_letter")
            return
        summary.count(outcomes[0].value)

    async def _apply_counts(self, raws: list[dict[str, Any]], summary: SweepSummary) -> None:
        """A page of counts in one pipelined round trip (each still its own script call); a
        count the engine refuses goes through the pipeline on its own (retried or lettered)."""
        batch: list[tuple[str, SetCount]] = []
        for raw in raws:
            summary.counts += 1
            text = json.dumps(raw, sort_keys=True)
            try:
                command = map_polled_count(raw, self.ids)
            except Unmappable as exc:
                if await self._letter_once(COUNT, str(exc), text):
                    summary.count_count("dead_letter")
                continue
            if command is None:  # not ours: another state, item or location
                summary.count_count("ignored")
                self.pipeline.metrics.outcome(self.pipeline.name, "ignored")
                continue
            batch.append((text, command))
        if not batch:
            return
        metrics, name = self.pipeline.metrics, self.pipeline.name
        results = await with_retries(
            lambda: self.pipeline.gateway.stock_batch([command for _, command in batch]),
            self.pipeline.backoff,
            on_retry=lambda _exc: metrics.outcome(name, "retried"),
        )
        for (text, command), result in zip(batch, results, strict=True):
            if isinstance(result, StockSyncError):
                try:
                    [result] = await self.pipeline.apply(COUNT, text, [command])
                except DeadLettered:
                    summary.count_count("dead_letter")
                    continue
            else:
                metrics.outcome(name, result.value)
                if result.value == "applied":
                    metrics.observe_lag(name, command.as_of_ms)
            summary.count_count(result.value)

    async def _dead_letter(
        self, raw: dict[str, Any], reason: str, text: str, summary: SweepSummary
    ) -> None:
        if await self._letter_once(f"change:{raw.get('type')}", reason, text):
            summary.count("dead_letter")

    async def _letter_once(self, kind: str, reason: str, text: str) -> bool:
        """Dead-letter a payload unless this process did already (the overlap re-reads
        recent changes and counts); True when it was written now."""
        if text in self._lettered:
            return False
        if len(self._lettered) >= MAX_REMEMBERED_LETTERS:
            self._lettered.clear()
        self._lettered.add(text)
        log.warning("square %s dead-lettered: %s", kind, reason)
        await self.pipeline.dead_letter(kind, reason, text)
        return True
