"""A transfer receipt file's rows, gathered per transfer until the file ends (no I/O).

Each transfer is received once, with all its rows (a WMS may list a transfer's SKUs anywhere
in the file): rows of one SKU are added up, and a transfer's rows name one ``supply_id`` at
most (rows that leave it empty do not name another).

A receipt is final (a received transfer takes no other receipt) and a shipped SKU it does not
name is received 0, its units reported short and gone from the books. So a transfer is
received whole or not at all: a rejected row of a transfer refuses the whole transfer, and a
row that cannot be told apart (unreadable, no valid ``transfer_id``) or a file beyond
``MAX_TRANSFER_RECEIPT_ROWS`` rows refuses every transfer of the file (any of them could be
the one missing a row). Memory is bounded by that row limit; a transfer has at most
``MAX_LINES`` SKUs (the engine's bound on a transfer).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from connectors.framework.commands import ReceiveTransfer
from connectors.warehouse.files import RawRow
from connectors.warehouse.mapping import RowRejected, TransferRow
from stocksync.domain.model import ID_PATTERN, MAX_LINES, MAX_QTY

MAX_TRANSFER_RECEIPT_ROWS = 100_000  # a day of deliveries to every store is far below
_ID = re.compile(ID_PATTERN)


@dataclass
class PendingTransfer:
    rows: list[RawRow] = field(default_factory=list)
    qty_by_sku: dict[str, int] = field(default_factory=dict)
    supply_ids: set[str] = field(default_factory=set)
    spoiled_by: RawRow | None = None  # a rejected row of this transfer


class TransferReceipts:
    """The transfers of one file, in the order they first appear."""

    def __init__(self, max_rows: int = MAX_TRANSFER_RECEIPT_ROWS) -> None:
        self.max_rows = max_rows
        self.rows = 0
        self.pending: dict[str, PendingTransfer] = {}
        self.unattributed: RawRow | None = None  # the first rejected row of no known transfer
        self.overflowed = False

    def add(self, raw: RawRow, row: TransferRow) -> RowRejected | None:
        """Keep a row for its transfer; the refusal when the file holds too many rows."""
        if self.rows >= self.max_rows:
            self.overflowed = True
            return RowRejected(
                "too_many_rows", f"a transfer receipt file holds at most {self.max_rows:,} rows"
            )
        self.rows += 1
        transfer = self.pending.setdefault(row.transfer_id, PendingTransfer())
        transfer.rows.append(raw)
        transfer.qty_by_sku[row.sku] = transfer.qty_by_sku.get(row.sku, 0) + row.qty
        if row.supply_id is not None:
            transfer.supply_ids.add(row.supply_id)
        return None

    def reject(self, raw: RawRow) -> None:
        """A row was rejected: its transfer (or, not knowing which, the file) is not received."""
        named = (raw.fields or {}).get("transfer_id")
        transfer_id = named.strip() if isinstance(named, str) else None
        if transfer_id and _ID.match(transfer_id):
            self.pending.setdefault(transfer_id, PendingTransfer()).spoiled_by = raw
        elif self.unattributed is None:
            self.unattributed = raw

    def receipts(self) -> Iterator[tuple[list[RawRow], ReceiveTransfer | RowRejected]]:
        """Each transfer's rows with its receipt, or why all of them are refused."""
        for transfer_id, transfer in self.pending.items():
            if transfer.rows:
                yield transfer.rows, self._receipt(transfer_id, transfer)

    def _receipt(
        self, transfer_id: str, transfer: PendingTransfer
    ) -> ReceiveTransfer | RowRejected:
        if self.overflowed:
            return RowRejected(
                "file_too_long",
                f"the file has more than {self.max_rows:,} rows; no transfer of it is received",
            )
        if self.unattributed is not None:
            return RowRejected(
                "unattributed_row",
                f"line {self.unattributed.line} names no transfer; no transfer of the file is "
                "received (one of them could be missing that row)",
            )
        if transfer.spoiled_by is not None:
            return RowRejected(
                "rejected_row",
                f"line {transfer.spoiled_by.line} of transfer {transfer_id} was rejected; a "
                "transfer is received whole or not at all",
            )
        return _receipt(transfer_id, transfer)


def _receipt(transfer_id: str, transfer: PendingTransfer) -> ReceiveTransfer | RowRejected:
    supplies = transfer.supply_ids
    if len(supplies) > 1:
        return RowRejected(
            "conflicting_supply",
            f"the rows of transfer {transfer_id} name different supply_ids "
            f"{sorted(supplies)} (a receipt consumes one supply)",
        )
    if len(transfer.qty_by_sku) > MAX_LINES:
        return RowRejected(
            "too_many_lines", f"transfer {transfer_id} lists more than {MAX_LINES} SKUs"
        )
    too_many = sorted(sku for sku, qty in transfer.qty_by_sku.items() if qty > MAX_QTY)
    if too_many:
        return RowRejected(
            "too_large", f"transfer {transfer_id}: {too_many[0]} adds up to more than {MAX_QTY}"
        )
    lines = tuple(sorted(transfer.qty_by_sku.items()))
    return ReceiveTransfer(transfer_id, lines, next(iter(supplies), None))
