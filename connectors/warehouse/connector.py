"""The warehouse connector: watches an inbox directory for WMS snapshot and receipt files.

A file is picked up when its name ends in ``.csv``, ``.jsonl`` or ``.ndjson`` and it has not
changed for ``settle_seconds`` (upload as ``name.csv.part`` and rename when done to be sure).
Files are processed in name order; the WMS has no API, so there is no webhook and no drift
check (see the README for why).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from starlette.requests import Request
from starlette.responses import Response

from connectors.warehouse.config import WarehouseConfig
from connectors.warehouse.files import SUFFIXES
from connectors.warehouse.importer import FileImporter, FileSummary
from stocksync.domain.errors import NotFound
from stocksync.plugins import Drift, EngineContext

log = logging.getLogger(__name__)


def ready_files(inbox: Path, settle_seconds: float, now: float | None = None) -> list[Path]:
    """Files in the inbox that are complete, oldest name first."""
    now = time.time() if now is None else now
    found = []
    for path in inbox.iterdir():
        if path.suffix.lower() not in SUFFIXES or not path.is_file():
            continue  # .part uploads, the processed dir, rejects reports
        if now - path.stat().st_mtime >= settle_seconds:
            found.append(path)
    return sorted(found, key=lambda p: p.name)


class WarehouseConnector:
    name = "warehouse"

    def __init__(self, config: WarehouseConfig) -> None:
        self.config = config
        self.console = Console(stderr=True)

    async def run(self, ctx: EngineContext) -> None:
        """Process the inbox every ``poll_seconds`` until cancelled (or once, with ``once``)."""
        importer = FileImporter(ctx, self.config, self.name)
        while True:
            try:
                summaries = await self.process_inbox(importer)
            except Exception:
                if self.config.once:
                    raise
                log.exception("warehouse inbox pass failed; retrying at the next poll")
                summaries = []
            if self.config.once:
                return
            if not summaries:
                await anyio.sleep(self.config.poll_seconds)

    async def process_inbox(self, importer: FileImporter) -> list[FileSummary]:
        """Import every ready file once, in name order; prints and returns their summaries."""
        files = await anyio.to_thread.run_sync(
            ready_files, self.config.inbox, self.config.settle_seconds
        )
        summaries = []
        with self._progress() as progress:
            for path in files:
                summary = await importer.import_file(path, progress)
                print(f"{self.name}: {summary.line()}", flush=True)
                summaries.append(summary)
        return summaries

    @contextmanager
    def _progress(self) -> Iterator[Progress | None]:
        show = self.config.progress
        if show is None:
            show = self.console.is_terminal
        if not show:
            yield None
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            yield progress

    async def handle_webhook(self, ctx: EngineContext, request: Request) -> Response:
        raise NotFound("the warehouse connector takes files, not webhooks", resource="webhook")

    async def drift(self, ctx: EngineContext) -> list[Drift] | None:
        """None: the WMS has no API to read its current counts (its snapshots are the counts,
        and they are already applied through the as-of rule)."""
        return None


def create(table: Mapping[str, Any]) -> WarehouseConnector:
    """The entry point: build the connector from its ``[warehouse]`` TOML table."""
    return WarehouseConnector(WarehouseConfig.parse(table))
