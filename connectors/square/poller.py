"""Polling Square's inventory changes from a checkpoint, page by page.

The checkpoint is ``{"updated_after", "cursor", "high"}``: the sweep's watermark (Square's
``updated_after`` filters on ``created_at``), Square's cursor for the next page of the sweep,
and the newest ``created_at`` seen so far. It is saved after each page is applied, never
before, so a crash in between only re-applies that page, which is idempotent by each change's
id. A change that keeps failing transiently stops the sweep before the checkpoint moves.
When a sweep ends, the next one starts ``overlap_seconds`` before the newest ``created_at``.
A saved cursor Square refuses as ``INVALID_CURSOR`` (a page's cursor has a limited lifespan)
starts the sweep again from its watermark, once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.framework.commands import Unmappable
from connectors.framework.config import IdMap
from connectors.framework.pipeline import DeadLettered, Pipeline
from connectors.square.client import SquareClient, SquareRefused
from connectors.square.config import SquareConfig
from connectors.square.mapping import created_at, map_change

log = logging.getLogger(__name__)
MAX_REMEMBERED_LETTERS = 10_000
INVALID_CURSOR = "INVALID_CURSOR"  # Square's ErrorCode for a cursor it no longer takes


@dataclass(frozen=True)
class Checkpoint:
    updated_after: str
    cursor: str | None = None
    high: str | None = None

    @classmethod
    def parse(cls, text: str | None, start_at: str) -> Checkpoint:
        if not text:
            return cls(start_at)
        data = json.loads(text)
        return cls(data["updated_after"], data.get("cursor"), data.get("high"))

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class SweepSummary:
    """What one sweep did: pages read, changes seen, and each change's outcome (applied,
    stale, duplicate for the first command of a change; ignored; dead_letter)."""

    pages: int = 0
    changes: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


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
        self._lettered: set[str] = set()  # changes already dead-lettered by this process

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
                point, restarted = Checkpoint(point.updated_after, None, point.high), True
                continue
            summary.pages += 1
            high = point.high
            for raw in page.changes:
                await self._apply(raw, summary)  # a transient failure leaves the checkpoint
                high = _later(high, created_at(raw))
            if page.cursor:
                point = Checkpoint(point.updated_after, page.cursor, high)
            else:
                point = Checkpoint(self._next_watermark(point.updated_after, high))
            await self.pipeline.save_checkpoint(point.dump())
            if not page.cursor:
                return summary

    def _next_watermark(self, updated_after: str, high: str | None) -> str:
        newest = _moment(high)
        if newest is None:
            return updated_after
        start = _rfc3339(newest - timedelta(seconds=self.config.overlap_seconds))
        return _later(updated_after, start) or start

    async def _apply(self, raw: dict[str, Any], summary: SweepSummary) -> None:
        summary.changes += 1
        text = json.dumps(raw, sort_keys=True)
        try:
            commands = map_change(raw, self.ids, self.config.reservation_prefix)
        except Unmappable as exc:
            await self._dead_letter(raw, str(exc), text, summary)
            return
        if not commands:  # a move between states that are not on hand
            summary.count("ignored")
            self.pipeline.metrics.outcome(self.pipeline.name, "ignored")
            return
        try:
            outcomes = await self.pipeline.apply(f"change:{raw.get('type')}", text, commands)
        except DeadLettered:
            summary.count("dead_letter")
            return
        summary.count(outcomes[0].value)

    async def _dead_letter(
        self, raw: dict[str, Any], reason: str, text: str, summary: SweepSummary
    ) -> None:
        key = text  # the overlap re-reads recent changes: letter each one once per process
        if key in self._lettered:
            return
        if len(self._lettered) >= MAX_REMEMBERED_LETTERS:
            self._lettered.clear()
        self._lettered.add(key)
        summary.count("dead_letter")
        log.warning("square change dead-lettered: %s", reason)
        await self.pipeline.dead_letter(f"change:{raw.get('type')}", reason, text)
