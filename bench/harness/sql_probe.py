"""Probes on the SQL side of the ledger benchmark: per-batch and per-statement time, DB CPU."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.store.outbox import Entry


class StatementTimes:
    """Cursor time per statement kind and table (e.g. "INSERT stock_movements") on an engine."""

    PATTERN = re.compile(r"^\s*(INSERT INTO|UPDATE|DELETE FROM|SELECT\b.*?\bFROM)\s+(\w+)", re.S)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seconds: dict[str, float] = {}
        self._began = 0.0

    def _before(self, *args: Any) -> None:
        self._began = perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        found = self.PATTERN.match(statement)
        label = f"{found.group(1).split()[0]} {found.group(2)}" if found else "other"
        self.seconds[label] = self.seconds.get(label, 0.0) + perf_counter() - self._began

    def __enter__(self) -> StatementTimes:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


class TimedLedger(SqlLedger):
    """The real ledger, timing each ``record`` (one SQL transaction per batch)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.seconds: list[float] = []

    def record_entries(self, entries: Mapping[str, Sequence[Entry]]) -> int:
        started = perf_counter()
        try:
            return super().record_entries(entries)
        finally:
            self.seconds.append(perf_counter() - started)


def postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (backends, WAL writer, checkpointer...)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith("postgres"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
