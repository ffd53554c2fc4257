"""Pure mapping of warehouse file rows to engine commands (no I/O).

A row is a dict of field name to value: strings from a CSV file, JSON values from a JSON Lines
file. A row that cannot become a command raises :class:`RowRejected` with a stable ``code``
(the first word of the reason in the rejects report).

Kinds: a ``snapshot`` row is an absolute count; a ``receipt`` row a delivery into a location
(its optional ``supply_id`` names the announced supply it delivers, which it consumes); a
``transfer_receipt`` row one SKU of a shipped transfer that arrived (``transfer_id``, ``sku``,
``qty``, optional ``supply_id``): the rows of one transfer are received together
(:mod:`connectors.warehouse.transfers`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from connectors.framework.commands import Adjust, SetCount, Unmappable
from stocksync.domain.model import ID_PATTERN, LOCATION_PATTERN, MAX_QTY, SKU_PATTERN

MAX_ON_HAND = 1_000_000_000  # the engine's largest count
MAX_RECEIPT_QTY = 1_000_000  # the engine's largest delta
RECEIPT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
_SKU = re.compile(SKU_PATTERN)
_LOCATION = re.compile(LOCATION_PATTERN)
_RECEIPT_ID = re.compile(RECEIPT_ID_PATTERN)
_ENGINE_ID = re.compile(ID_PATTERN)  # transfer and supply ids, as the API takes them
_DIGITS = re.compile(r"^[+-]?\d{1,19}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FileKind(StrEnum):
    SNAPSHOT = "snapshot"
    RECEIPT = "receipt"
    TRANSFER_RECEIPT = "transfer_receipt"


# The fields each kind's rows must have; OPTIONAL_FIELDS those they may have besides.
FIELDS: dict[FileKind, tuple[str, ...]] = {
    FileKind.SNAPSHOT: ("sku", "location_id", "on_hand", "as_of"),
    FileKind.RECEIPT: ("sku", "location_id", "qty", "received_at", "receipt_id"),
    FileKind.TRANSFER_RECEIPT: ("transfer_id", "sku", "qty"),
}
OPTIONAL_FIELDS: dict[FileKind, tuple[str, ...]] = {
    FileKind.RECEIPT: ("supply_id",),
    FileKind.TRANSFER_RECEIPT: ("supply_id",),
}


def allowed_fields(kind: FileKind) -> frozenset[str]:
    return frozenset(FIELDS[kind]) | frozenset(OPTIONAL_FIELDS.get(kind, ()))


@dataclass(frozen=True)
class TransferRow:
    """One SKU of a transfer that arrived; ``supply_id``: the supply the receipt consumes."""

    transfer_id: str
    sku: str
    qty: int
    supply_id: str | None


class RowRejected(Unmappable):
    """A row that cannot be applied; ``code`` names why (missing_field, bad_number, ...)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def kind_of(fields: set[str]) -> FileKind | None:
    """The file kind whose fields ``fields`` are (a header): all it needs, none it does not
    know."""
    for kind, names in FIELDS.items():
        if set(names) <= fields <= allowed_fields(kind):
            return kind
    return None


def kind_of_keys(keys: set[str]) -> FileKind | None:
    """A JSON Lines file's kind from its first object, which may itself be a bad row."""
    if "on_hand" in keys or "as_of" in keys:
        return FileKind.SNAPSHOT
    if "transfer_id" in keys:
        return FileKind.TRANSFER_RECEIPT
    if keys & {"qty", "received_at", "receipt_id"}:
        return FileKind.RECEIPT
    return None


def to_snapshot_count(row: Mapping[str, Any], source: str) -> SetCount:
    """A snapshot row: an absolute count taken at ``as_of`` (the as-of rule keeps later sales)."""
    sku, location_id = _position(row)
    on_hand = _integer(row, "on_hand", 0, MAX_ON_HAND)
    as_of_ms = _timestamp_ms(row, "as_of")
    # Stable across re-deliveries: the same count of the same position at the same time.
    event_id = f"snapshot:{sku}:{location_id}:{as_of_ms}"
    return SetCount(sku, location_id, on_hand, as_of_ms, source, event_id)


def to_receipt(row: Mapping[str, Any], source: str) -> Adjust:
    """A receipt row: units received into a location at ``received_at``."""
    sku, location_id = _position(row)
    qty = _integer(row, "qty", 1, MAX_RECEIPT_QTY)
    received_ms = _timestamp_ms(row, "received_at")
    receipt_id = _text(row, "receipt_id")
    if not _RECEIPT_ID.match(receipt_id):
        raise RowRejected("bad_receipt_id", f"receipt_id {receipt_id[:80]!r} is not a valid id")
    supply_id = _optional_id(row, "supply_id")
    # One receipt may list several SKUs and locations: each line is its own event.
    event_id = f"receipt:{receipt_id}:{sku}:{location_id}"
    return Adjust(sku, location_id, qty, "receipt", source, event_id, received_ms, supply_id)


def to_transfer_row(row: Mapping[str, Any]) -> TransferRow:
    """A transfer receipt row: units of one SKU of a shipped transfer that arrived."""
    transfer_id = _text(row, "transfer_id")
    if not _ENGINE_ID.match(transfer_id):
        raise RowRejected("bad_transfer_id", f"transfer_id {transfer_id[:80]!r} is not an id")
    sku = _text(row, "sku")
    if not _SKU.match(sku):
        raise RowRejected("bad_sku", f"sku {sku[:80]!r} is not 1-64 chars of [A-Za-z0-9._-]")
    qty = _integer(row, "qty", 0, MAX_QTY)  # 0: the line was shipped, nothing of it arrived
    return TransferRow(transfer_id, sku, qty, _optional_id(row, "supply_id"))


def to_command(kind: FileKind, row: Mapping[str, Any], source: str) -> SetCount | Adjust:
    if kind is FileKind.SNAPSHOT:
        return to_snapshot_count(row, source)
    if kind is FileKind.RECEIPT:
        return to_receipt(row, source)
    raise ValueError(f"{kind} rows are received per transfer (to_transfer_row)")


def _optional_id(row: Mapping[str, Any], name: str) -> str | None:
    """An optional id column: None when absent or empty."""
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = _text(row, name)
    if not _ENGINE_ID.match(text):
        raise RowRejected(f"bad_{name}", f"{name} {text[:80]!r} is not a valid id")
    return text


def _text(row: Mapping[str, Any], name: str) -> str:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowRejected("missing_field", f"{name} is missing")
    if not isinstance(value, str):
        raise RowRejected("bad_field", f"{name} must be a string, not {type(value).__name__}")
    return value.strip()


def _position(row: Mapping[str, Any]) -> tuple[str, str]:
    sku = _text(row, "sku")
    if not _SKU.match(sku):
        raise RowRejected("bad_sku", f"sku {sku[:80]!r} is not 1-64 chars of [A-Za-z0-9._-]")
    location_id = _text(row, "location_id")
    if not _LOCATION.match(location_id):
        raise RowRejected("bad_location", f"location_id {location_id[:80]!r} is not a slug")
    return sku, location_id


def _integer(row: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowRejected("missing_field", f"{name} is missing")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RowRejected("bad_number", f"{name} {value!r} is not an integer")
    if isinstance(value, str):
        text = value.strip()
        if not _DIGITS.match(text):
            raise RowRejected("bad_number", f"{name} {text[:40]!r} is not an integer")
        value = int(text)
    if value < 0:
        raise RowRejected("negative", f"{name} {value} is negative")
    if value < low:
        raise RowRejected("bad_number", f"{name} {value} is below {low}")
    if value > high:
        raise RowRejected("too_large", f"{name} {value} is above {high:,}")
    return value


def _timestamp_ms(row: Mapping[str, Any], name: str) -> int:
    text = _text(row, name)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RowRejected("bad_timestamp", f"{name} {text[:40]!r} is not ISO 8601") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise RowRejected("naive_timestamp", f"{name} {text!r} has no UTC offset")
    return (moment - _EPOCH) // timedelta(milliseconds=1)
