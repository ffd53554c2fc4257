"""Warehouse transfer receipt files and receipts naming a supply: rows and their grouping per
transfer (pure), then files imported into the real store."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.framework.commands import ReceiveTransfer
from connectors.warehouse.config import WarehouseConfig
from connectors.warehouse.connector import WarehouseConnector
from connectors.warehouse.files import RawRow, RowReader
from connectors.warehouse.importer import FileImporter, FileSummary
from connectors.warehouse.mapping import (
    FileKind,
    RowRejected,
    TransferRow,
    kind_of,
    kind_of_keys,
    to_receipt,
    to_transfer_row,
)
from connectors.warehouse.transfers import TransferReceipts
from stocksync.domain.model import MAX_LINES, MAX_QTY, Location, TransferState
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore

ROW = {"transfer_id": "TR-2024-0007", "sku": "SOFA-1", "qty": "4"}
RECEIPT = {
    "sku": "SOFA-1",
    "location_id": "wh-east",
    "qty": "5",
    "received_at": "2024-05-02T07:30:00Z",
    "receipt_id": "GRN-2024-0042",
}


def raw(line: int) -> RawRow:
    return RawRow(line, f"line {line}", {})


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"transfer_id", "sku", "qty"}, FileKind.TRANSFER_RECEIPT),
        ({"transfer_id", "sku", "qty", "supply_id"}, FileKind.TRANSFER_RECEIPT),
        ({*RECEIPT, "supply_id"}, FileKind.RECEIPT),
        (set(RECEIPT), FileKind.RECEIPT),
        ({"transfer_id", "sku"}, None),
        ({"transfer_id", "sku", "qty", "location_id"}, None),
        ({"sku", "location_id", "on_hand", "as_of", "supply_id"}, None),  # counts consume none
    ],
)
def test_kind_of_knows_transfer_receipts_and_optional_supply_ids(
    fields: set[str], kind: FileKind | None
) -> None:
    assert kind_of(fields) == kind


def test_kind_of_keys_tells_a_transfer_receipt_from_a_receipt() -> None:
    assert kind_of_keys({"transfer_id", "sku", "qty"}) is FileKind.TRANSFER_RECEIPT
    assert kind_of_keys({"sku", "qty", "receipt_id"}) is FileKind.RECEIPT


def test_row_reader_reads_a_csv_transfer_receipt() -> None:
    text = "transfer_id,sku,qty,supply_id\nTR-1,SOFA-1,4,\nTR-1,LAMP-2,1,PO-9\n"
    reader = RowReader(io.BytesIO(text.encode()), ".csv")
    assert reader.kind is FileKind.TRANSFER_RECEIPT
    rows = [to_transfer_row(row.fields or {}) for row in reader]
    assert rows == [
        TransferRow("TR-1", "SOFA-1", 4, None),
        TransferRow("TR-1", "LAMP-2", 1, "PO-9"),
    ]


def test_row_reader_rejects_a_json_transfer_row_with_an_unknown_field() -> None:
    text = '{"transfer_id": "TR-1", "sku": "A", "qty": 1, "location_id": "wh"}\n'
    [row] = list(RowReader(io.BytesIO(text.encode()), ".jsonl"))
    assert row.error is not None
    assert row.error.code == "wrong_fields"


def test_to_transfer_row_takes_json_integers_and_zero() -> None:
    assert to_transfer_row({**ROW, "qty": 0}) == TransferRow("TR-2024-0007", "SOFA-1", 0, None)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"transfer_id": "bad id"}, "bad_transfer_id"),
        ({"transfer_id": ""}, "missing_field"),
        ({"sku": "bad sku"}, "bad_sku"),
        ({"qty": "-1"}, "negative"),
        ({"qty": str(MAX_QTY + 1)}, "too_large"),
        ({"qty": "four"}, "bad_number"),
        ({"supply_id": "PO 9"}, "bad_supply_id"),
    ],
)
def test_to_transfer_row_rejects_bad_fields(change: dict[str, Any], code: str) -> None:
    with pytest.raises(RowRejected) as refused:
        to_transfer_row({**ROW, **change})
    assert refused.value.code == code


def test_to_receipt_names_the_supply_it_delivers() -> None:
    assert to_receipt({**RECEIPT, "supply_id": "PO-2024-17"}, "wms").supply_id == "PO-2024-17"
    assert to_receipt({**RECEIPT, "supply_id": " "}, "wms").supply_id is None
    assert to_receipt(RECEIPT, "wms").supply_id is None
    with pytest.raises(RowRejected, match="bad_supply_id"):
        to_receipt({**RECEIPT, "supply_id": "PO/17"}, "wms")


def test_transfer_receipts_gather_a_transfers_rows_from_anywhere_in_the_file() -> None:
    receipts = TransferReceipts()
    rows = [
        TransferRow("TR-1", "SOFA-1", 2, None),
        TransferRow("TR-2", "LAMP-2", 1, None),
        TransferRow("TR-1", "SOFA-1", 3, "PO-9"),  # a second carton of the same SKU
        TransferRow("TR-1", "CHAIR-3", 0, None),
    ]
    for n, row in enumerate(rows, start=2):
        assert receipts.add(raw(n), row) is None
    found = [([r.line for r in rows], receipt) for rows, receipt in receipts.receipts()]
    assert found == [
        ([2, 4, 5], ReceiveTransfer("TR-1", (("CHAIR-3", 0), ("SOFA-1", 5)), "PO-9")),
        ([3], ReceiveTransfer("TR-2", (("LAMP-2", 1),), None)),
    ]


def test_transfer_receipts_refuse_a_transfer_naming_two_supplies() -> None:
    receipts = TransferReceipts()
    receipts.add(raw(2), TransferRow("TR-1", "A", 1, "PO-1"))
    receipts.add(raw(3), TransferRow("TR-1", "B", 1, "PO-2"))
    [(rows, refused)] = list(receipts.receipts())
    assert len(rows) == 2
    assert isinstance(refused, RowRejected)
    assert refused.code == "conflicting_supply"


def test_transfer_receipts_refuse_a_transfer_beyond_the_engines_bounds() -> None:
    receipts = TransferReceipts()
    for n in range(MAX_LINES + 1):
        receipts.add(raw(n), TransferRow("TR-1", f"SKU-{n}", 1, None))
    receipts.add(raw(0), TransferRow("TR-2", "A", MAX_QTY, None))
    receipts.add(raw(0), TransferRow("TR-2", "A", 1, None))
    codes = [r.code for _, r in receipts.receipts() if isinstance(r, RowRejected)]
    assert codes == ["too_many_lines", "too_large"]


def test_transfer_receipts_refuse_every_transfer_of_a_file_beyond_its_bound() -> None:
    receipts = TransferReceipts(max_rows=2)
    assert receipts.add(raw(2), TransferRow("TR-1", "A", 1, None)) is None
    assert receipts.add(raw(3), TransferRow("TR-2", "B", 1, None)) is None
    refused = receipts.add(raw(4), TransferRow("TR-1", "C", 1, None))
    assert refused is not None
    assert refused.code == "too_many_rows"
    found = [([r.line for r in rows], r) for rows, r in receipts.receipts()]
    assert [lines for lines, _ in found] == [[2], [3]]
    assert [r.code for _, r in found if isinstance(r, RowRejected)] == ["file_too_long"] * 2


def test_transfer_receipts_refuse_the_transfer_of_a_rejected_row_whole() -> None:
    """A receipt is final and a SKU it leaves out is received 0: without its bad row the
    transfer would lose that row's units as a shortfall."""
    receipts = TransferReceipts()
    receipts.add(raw(2), TransferRow("TR-1", "A", 1, None))
    receipts.reject(RawRow(3, "TR-1,B,many", {"transfer_id": "TR-1", "sku": "B", "qty": "many"}))
    receipts.add(raw(4), TransferRow("TR-2", "A", 1, None))
    found = list(receipts.receipts())
    assert [[r.line for r in rows] for rows, _ in found] == [[2], [4]]
    refused, received = found[0][1], found[1][1]
    assert isinstance(refused, RowRejected)
    assert (refused.code, "line 3" in refused.detail) == ("rejected_row", True)
    assert received == ReceiveTransfer("TR-2", (("A", 1),), None)


@pytest.mark.parametrize(
    "bad",
    [
        RawRow(3, "", None, RowRejected("too_long", "line is longer than 4096 bytes")),
        RawRow(3, "x,B,1", {"transfer_id": "bad id", "sku": "B", "qty": "1"}),
    ],
)
def test_transfer_receipts_refuse_the_whole_file_for_a_row_of_no_known_transfer(
    bad: RawRow,
) -> None:
    receipts = TransferReceipts()
    receipts.add(raw(2), TransferRow("TR-1", "A", 1, None))
    receipts.reject(bad)
    [(rows, refused)] = list(receipts.receipts())
    assert [r.line for r in rows] == [2]
    assert isinstance(refused, RowRejected)
    assert refused.code == "unattributed_row"


# -- files imported into the real store -------------------------------------------------


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def config(inbox: Path) -> WarehouseConfig:
    return WarehouseConfig(inbox=inbox, settle_seconds=0, once=True, batch_rows=2)


@pytest.fixture
async def shipped(store: RedisStockStore, sku: str) -> str:
    """wh-east shipped 6 units of ``sku`` to store-a (TR-1) and 2 (TR-2); returns the SKU."""
    for location_id, kind in (("wh-east", "warehouse"), ("store-a", "store")):
        await store.upsert_location(Location(location_id, location_id, kind, ship=True))
    await store.set_count(sku, "wh-east", 10)
    await store.ship_transfer("TR-1", "wh-east", "store-a", [(sku, 6)])
    await store.ship_transfer("TR-2", "wh-east", "store-a", [(sku, 2)])
    return sku


async def import_file(
    ctx: EngineContext, config: WarehouseConfig, name: str, text: str
) -> FileSummary:
    (config.inbox / name).write_text(text)
    [summary] = await WarehouseConnector(config).process_inbox(
        FileImporter(ctx, config, "warehouse")
    )
    return summary


async def at_store(store: RedisStockStore, sku: str) -> tuple[int, int]:
    position = await store.position(sku, "store-a")
    return position.on_hand, position.in_transit


def rejects(summary: FileSummary) -> list[str]:
    assert summary.rejects is not None
    text = summary.rejects.read_text(encoding="utf-8")
    return [row["reason"] for row in csv.DictReader(io.StringIO(text))]


async def test_import_receives_each_transfer_once_with_all_its_rows(
    ctx: EngineContext, config: WarehouseConfig, store: RedisStockStore, shipped: str
) -> None:
    sku = shipped
    text = f"transfer_id,sku,qty\nTR-1,{sku},4\nTR-2,{sku},2\nTR-1,{sku},1\n"  # TR-1 split
    summary = await import_file(ctx, config, "arrivals.csv", text)
    assert (summary.kind, summary.applied, summary.rejected) == ("transfer_receipt", 3, 0)
    assert await at_store(store, sku) == (5 + 2, 0)  # TR-1's missing unit left the books
    first = await store.get_transfer("TR-1")
    assert (first.state, [(ln.shipped, ln.received) for ln in first.lines]) == (
        TransferState.RECEIVED,
        [(6, 5)],
    )


async def test_import_same_receipt_again_is_a_replay_and_changes_nothing(
    ctx: EngineContext, config: WarehouseConfig, store: RedisStockStore, shipped: str
) -> None:
    sku = shipped
    text = f"transfer_id,sku,qty\nTR-1,{sku},6\n"
    await import_file(ctx, config, "a.csv", text)
    before = await store.position(sku, "store-a")
    same = await import_file(ctx, config, "a-copy.csv", text)  # the same file again
    assert same.duplicate_of == "a.csv"
    again = await import_file(
        ctx, config, "b.jsonl", f'{{"transfer_id": "TR-1", "sku": "{sku}", "qty": 6}}\n'
    )
    assert (again.duplicate, again.applied, again.rejected) == (1, 0, 0)
    assert await store.position(sku, "store-a") == before


async def test_import_refused_transfer_rejects_all_its_rows_and_changes_nothing(
    ctx: EngineContext, config: WarehouseConfig, store: RedisStockStore, shipped: str
) -> None:
    sku = shipped
    text = (
        "transfer_id,sku,qty\n"
        f"TR-1,{sku},5\n"
        f"TR-1,{sku},2\n"  # 7 of 6 shipped
        f"TR-9,{sku},1\n"  # never shipped
        f"TR-2,{sku},2\n"
    )
    summary = await import_file(ctx, config, "arrivals.csv", text)
    assert (summary.applied, summary.rejected) == (1, 3)
    reasons = rejects(summary)
    assert sorted(r.split(":")[0] for r in reasons) == [  # transfers are received at once
        "receive_exceeds_shipped",
        "receive_exceeds_shipped",
        "unknown_transfer",
    ]
    assert await at_store(store, sku) == (2, 6)  # TR-2 received, TR-1 still on its way
    assert (await store.get_transfer("TR-1")).state is TransferState.SHIPPED


async def test_import_bad_row_refuses_its_transfer_and_changes_nothing(
    ctx: EngineContext, config: WarehouseConfig, store: RedisStockStore, shipped: str
) -> None:
    sku = shipped
    text = f"transfer_id,sku,qty\nTR-1,{sku},six\nTR-2,{sku},2\n"
    summary = await import_file(ctx, config, "arrivals.csv", text)
    assert (summary.applied, summary.rejected) == (1, 1)
    assert rejects(summary)[0].startswith("bad_number")
    assert await at_store(store, sku) == (2, 6)
    assert (await store.get_transfer("TR-1")).state is TransferState.SHIPPED


async def test_import_other_receipt_after_received_is_rejected(
    ctx: EngineContext, config: WarehouseConfig, store: RedisStockStore, shipped: str
) -> None:
    sku = shipped
    await import_file(ctx, config, "a.csv", f"transfer_id,sku,qty\nTR-1,{sku},6\n")
    before = await store.position(sku, "store-a")
    summary = await import_file(ctx, config, "b.csv", f"transfer_id,sku,qty\nTR-1,{sku},5\n")
    assert rejects(summary)[0].startswith("invalid_transition")
    assert await store.position(sku, "store-a") == before


async def test_import_transfer_receipt_naming_a_supply_consumes_it(
    ctx: EngineContext, config: WarehouseConfig, store: RedisStockStore, shipped: str
) -> None:
    sku = shipped
    await store.set_incoming(sku, "store-a", "PO-17", 6, int(time.time() * 1000) + 3_600_000)
    summary = await import_file(
        ctx, config, "arrivals.csv", f"transfer_id,sku,qty,supply_id\nTR-1,{sku},6,PO-17\n"
    )
    assert summary.applied == 1
    position = await store.position(sku, "store-a")
    assert position.incoming == 0
    assert (await store.get_transfer("TR-1")).state is TransferState.RECEIVED


async def test_import_receipt_row_naming_a_supply_consumes_it(
    ctx: EngineContext, config: WarehouseConfig, store: RedisStockStore, shipped: str
) -> None:
    sku = shipped
    await store.set_incoming(sku, "wh-east", "PO-18", 10, int(time.time() * 1000) + 3_600_000)
    received_at = datetime.now(UTC).isoformat()
    text = (
        "sku,location_id,qty,received_at,receipt_id,supply_id\n"
        f"{sku},wh-east,4,{received_at},GRN-1,PO-18\n"
    )
    summary = await import_file(ctx, config, "grn.csv", text)
    assert summary.applied == 1
    position = await store.position(sku, "wh-east")
    assert (position.on_hand, position.incoming) == (10 - 8 + 4, 6)
