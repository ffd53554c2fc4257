"""Transfers between two locations and incoming supply (DESIGN "stock beyond the shelf").

A transfer ships at once (units leave the source's on_hand and enter the target's in_transit),
then is received (the units that arrived enter the target's on_hand; a shortfall is reported)
or cancelled (the units go back to the source). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from stocksync.domain.model import TransferState

# A transfer id and a supply id (a purchase order, an announced delivery): both are stored in
# a position's arrivals as 't:<id>' / 's:<id>', joined by '|' and ';' when read, so neither
# character may appear in one.
TRANSFER_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
SUPPLY_ID_PATTERN = TRANSFER_ID_PATTERN
# Arrivals (supplies and shipped transfer lines) one position may have: every read of the
# position returns them all, so they are bounded.
MAX_ARRIVALS = 50
# How far ahead an availability read may ask "available by": a promise beyond a year is none.
MAX_AVAILABLE_BY_DAYS = 366


@dataclass(frozen=True)
class TransferLine:
    sku: str
    shipped: int
    received: int  # 0 until the transfer is received


@dataclass(frozen=True)
class Transfer:
    transfer_id: str
    from_location_id: str
    to_location_id: str
    state: TransferState
    lines: list[TransferLine]
    expected_at_ms: int | None
    created_at_ms: int
    updated_at_ms: int
    replayed: bool = False  # this answer repeats an earlier one: nothing changed
    supply_id: str | None = None  # the incoming supply its receipt consumed
    at_risk_reservations: int = 0  # holds at the source a forced shipment put at risk

    def shortfall(self, line: TransferLine) -> int:
        """Units of a line shipped and not received (0 until the transfer is received)."""
        return line.shipped - line.received if self.state is TransferState.RECEIVED else 0


def unique_lines(lines: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """A transfer's or a receipt's lines sorted by SKU; ValueError when a SKU repeats."""
    ordered = sorted(lines)
    for before, after in pairwise(ordered):
        if before[0] == after[0]:
            raise ValueError(f"SKU {before[0]!r} is named twice; each SKU once")
    return ordered


def transfer_fingerprint(
    from_location_id: str,
    to_location_id: str,
    lines: list[tuple[str, int]],
    expected_at_ms: int | None,
    force: bool,
) -> str:
    """A digest of what a shipment asks for, to tell a retry of it from a conflict."""
    body = {
        "from": from_location_id,
        "to": to_location_id,
        "lines": [[sku, qty] for sku, qty in lines],
        "expected_at": expected_at_ms,
        "force": force,
    }
    canonical = json.dumps(body, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
