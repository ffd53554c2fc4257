"""Log lines as stocksync writes them, captured in memory for tests to read."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from stocksync import logs


@dataclass(frozen=True)
class CapturedLogs:
    stream: io.StringIO

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line, each parsed as the JSON object it must be."""
        return [json.loads(line) for line in self.text.splitlines()]

    def find(self, **fields: Any) -> list[dict[str, Any]]:
        """The lines that carry every one of ``fields`` with that value."""
        return [line for line in self.lines() if fields.items() <= line.items()]


@contextmanager
def captured_logs(level: int = logging.DEBUG) -> Iterator[CapturedLogs]:
    """stocksync's JSON handler on the root logger, writing into memory, while the block
    runs; the root logger is as it was afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    handler = logs.handler("json", stream)
    before = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield CapturedLogs(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
