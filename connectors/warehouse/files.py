"""Reading warehouse files as a stream of rows: CSV or JSON Lines, never the whole file at once.

Each line is bounded (``MAX_LINE_BYTES``): a longer line is rejected without being held in
memory. A CSV row is one line (warehouse exports do not quote newlines).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from connectors.warehouse.mapping import (
    FileKind,
    RowRejected,
    allowed_fields,
    kind_of,
    kind_of_keys,
)

MAX_LINE_BYTES = 4096
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RawRow:
    """One data line: its 1-based line number, its text, and its fields (or why it has none)."""

    line: int
    text: str
    fields: dict[str, Any] | None
    error: RowRejected | None = None


class UnknownFileKind(ValueError):
    """The header (CSV) or first object's keys (JSONL) match no file kind."""


def content_hash(path: Path) -> str:
    """SHA-256 of the file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bounded_lines(fh: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, bytes)`` per line, without the line ending; ``None`` for an oversized
    line (skipped to its end without keeping it)."""
    number = 0
    while True:
        line = fh.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # discard the rest of the long line
                line = fh.readline(_CHUNK)
            yield number, None
            continue
        yield number, line.rstrip(b"\r\n")


def _decode(raw: bytes, number: int) -> str:
    text = raw.decode("utf-8")
    return text.removeprefix("\ufeff") if number == 1 else text


class RowReader:
    """The rows of one file, after working out its format (by suffix) and kind (by header)."""

    def __init__(self, fh: BinaryIO, suffix: str) -> None:
        self.format = SUFFIXES[suffix]
        self._lines = bounded_lines(fh)
        self._header: list[str] = []
        self._first: tuple[int, str] | None = None
        self.kind = self._detect()

    def _detect(self) -> FileKind:
        for number, raw in self._lines:
            if raw is None:
                raise UnknownFileKind(f"line {number} is longer than {MAX_LINE_BYTES} bytes")
            try:
                text = _decode(raw, number)
            except UnicodeDecodeError:
                raise UnknownFileKind(f"line {number} is not UTF-8") from None
            if not text.strip():
                continue
            if self.format == "csv":
                self._header = [name.strip() for name in next(csv.reader([text]))]
                fields = set(self._header)
                kind = kind_of(fields) if len(fields) == len(self._header) else None
            else:  # JSON Lines: the first object's keys tell; its values are checked as a row
                self._first = (number, text)
                fields = set(self._json_object(number, text).fields or ())
                kind = kind_of_keys(fields)
            if kind is None:
                raise UnknownFileKind(
                    f"fields {sorted(fields)} are not a snapshot's, a receipt's or a transfer "
                    "receipt's"
                )
            return kind
        raise UnknownFileKind("the file has no header or rows")

    def __iter__(self) -> Iterator[RawRow]:
        if self._first is not None:
            yield self._json_row(*self._first)
        for number, raw in self._lines:
            if raw is None:
                error = RowRejected("too_long", f"line is longer than {MAX_LINE_BYTES} bytes")
                yield RawRow(number, "", None, error)
                continue
            try:
                text = _decode(raw, number)
            except UnicodeDecodeError:
                text = raw.decode("utf-8", "replace")
                yield RawRow(number, text, None, RowRejected("bad_encoding", "not UTF-8"))
                continue
            if not text.strip():
                continue  # blank lines (a trailing newline) carry nothing
            yield (
                self._csv_row(number, text)
                if self.format == "csv"
                else self._json_row(number, text)
            )

    def _json_row(self, number: int, text: str) -> RawRow:
        row = self._json_object(number, text)
        extra = set(row.fields or ()) - allowed_fields(self.kind)
        if extra:  # mapping reports missing fields; here, fields nobody asked for
            error = RowRejected("wrong_fields", f"unexpected fields {sorted(extra)}")
            return RawRow(number, text, None, error)
        return row

    def _csv_row(self, number: int, text: str) -> RawRow:
        if '"' in text or "\0" in text:  # quotes (or a NUL): the csv module's rules
            try:
                values = next(csv.reader([text]))
            except csv.Error as exc:
                return RawRow(number, text, None, RowRejected("bad_csv", str(exc)))
        else:  # what csv.reader gives for a line without quotes, at a fraction of its cost
            values = text.split(",")
        if len(values) != len(self._header):
            error = RowRejected(
                "wrong_fields", f"{len(values)} fields, the header has {len(self._header)}"
            )
            return RawRow(number, text, None, error)
        return RawRow(number, text, dict(zip(self._header, values, strict=True)))

    def _json_object(self, number: int, text: str) -> RawRow:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return RawRow(number, text, None, RowRejected("bad_json", str(exc)))
        if not isinstance(value, dict):
            return RawRow(number, text, None, RowRejected("bad_json", "not a JSON object"))
        return RawRow(number, text, value)
