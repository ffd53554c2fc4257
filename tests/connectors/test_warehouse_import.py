"""The warehouse connector end to end: files in an inbox, the real engine (Redis + SQLite)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from connectors.warehouse.config import WarehouseConfig
from connectors.warehouse.connector import WarehouseConnector, create, ready_files
from connectors.warehouse.importer import Batch, FileImporter, FileSummary, RejectsReport
from connectors.warehouse.transfers import TransferReceipts
from stocksync.domain.model import Location
from stocksync.ledger.tables import ConnectorFile
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore

SNAPSHOT_HEADER = "sku,location_id,on_hand,as_of\n"
RECEIPT_HEADER = "sku,location_id,qty,received_at,receipt_id\n"


def ago(minutes: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def config(inbox: Path) -> WarehouseConfig:
    return WarehouseConfig(inbox=inbox, settle_seconds=0, once=True, batch_rows=3)


@pytest.fixture
async def warehouses(store: RedisStockStore) -> list[str]:
    ids = ["wh-east", "wh-west"]
    for location_id in ids:
        await store.upsert_location(Location(location_id, location_id, "warehouse", ship=True))
    return ids


async def import_inbox(ctx: EngineContext, config: WarehouseConfig) -> list[FileSummary]:
    connector = WarehouseConnector(config)
    return await connector.process_inbox(FileImporter(ctx, config, "warehouse"))


async def on_hand(store: RedisStockStore, sku: str, location_id: str) -> int:
    return (await store.position(sku, location_id)).on_hand


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def events(ctx: EngineContext, outcome: str) -> float | None:
    labels = {"connector": "warehouse", "outcome": outcome}
    return ctx.registry.get_sample_value("stocksync_connector_events_total", labels)


@pytest.mark.usefixtures("warehouses")
async def test_import_applies_a_snapshot_then_receipts(
    ctx: EngineContext, config: WarehouseConfig, inbox: Path, store: RedisStockStore, sku: str
) -> None:
    (inbox / "0001-snapshot.csv").write_text(
        SNAPSHOT_HEADER + f"{sku},wh-east,10,{ago(60)}\n{sku},wh-west,4,{ago(60)}\n"
    )
    receipts = [
        {"sku": sku, "location_id": "wh-east", "qty": 5, "received_at": ago(30),
         "receipt_id": "GRN-1"},
        {"sku": sku, "location_id": "wh-west", "qty": 2, "received_at": ago(20),
         "receipt_id": "GRN-1"},
    ]  # fmt: skip
    (inbox / "0002-receipts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in receipts))

    snapshot, received = await import_inbox(ctx, config)

    assert (snapshot.kind, snapshot.rows, snapshot.applied, snapshot.rejected) == (
        "snapshot", 2, 2, 0
    )  # fmt: skip
    assert (received.kind, received.applied) == ("receipt", 2)
    assert await on_hand(store, sku, "wh-east") == 15
    assert await on_hand(store, sku, "wh-west") == 6
    assert names(inbox) == ["processed"]
    assert names(config.processed) == ["0001-snapshot.csv", "0002-receipts.jsonl"]
    with Session(ctx.engine) as session:
        stored = {f.name: json.loads(f.summary) for f in session.exec(select(ConnectorFile))}
    assert stored["0001-snapshot.csv"]["applied"] == 2
    assert stored["0002-receipts.jsonl"]["rows"] == 2
    assert events(ctx, "applied") == 4


@pytest.mark.usefixtures("warehouses")
async def test_import_applies_good_rows_and_reports_bad_ones(
    ctx: EngineContext, config: WarehouseConfig, inbox: Path, store: RedisStockStore, sku: str
) -> None:
    as_of = ago(60)
    lines = [
        f"{sku},wh-east,10,{as_of}",
        f"{sku},wh-west,lots,{as_of}",
        f"{sku},wh-nowhere,3,{as_of}",
        f"{sku}-B,wh-east,-1,{as_of}",
        f",wh-east,1,{as_of}",
        f"{sku}-B,wh-west,2,2024-05-02T06:00:00",
        f"{sku}-C,wh-west,7,{as_of}",
        f"{sku}-C,wh-west",
    ]
    (inbox / "snapshot.csv").write_text(SNAPSHOT_HEADER + "\n".join(lines) + "\n")

    [summary] = await import_inbox(ctx, config)

    assert (summary.rows, summary.applied, summary.rejected) == (8, 2, 6)
    assert await on_hand(store, sku, "wh-east") == 10
    assert await on_hand(store, f"{sku}-C", "wh-west") == 7
    assert (await store.position(sku, "wh-west")).on_hand == 0  # the bad row changed nothing
    assert summary.rejects == config.processed / "snapshot.csv.rejects.csv"
    with summary.rejects.open(newline="") as fh:
        report = list(csv.reader(fh))
    assert report[0] == ["line", "reason", "raw"]
    assert [(line, reason.split(":")[0], raw) for line, reason, raw in report[1:]] == [
        ("3", "bad_number", lines[1]),
        ("4", "unknown_location", lines[2]),
        ("5", "negative", lines[3]),
        ("6", "missing_field", lines[4]),
        ("7", "naive_timestamp", lines[5]),
        ("9", "wrong_fields", lines[7]),
    ]
    assert events(ctx, "rejected") == 6


@pytest.mark.usefixtures("warehouses")
async def test_import_applies_the_same_content_once_even_renamed(
    ctx: EngineContext, config: WarehouseConfig, inbox: Path, store: RedisStockStore, sku: str
) -> None:
    content = RECEIPT_HEADER + f"{sku},wh-east,3,{ago(5)},GRN-7\n"
    (inbox / "receipts-a.csv").write_text(content)
    [first] = await import_inbox(ctx, config)
    (inbox / "receipts-a.csv").write_text(content)
    (inbox / "receipts-b.csv").write_text(content)

    again, renamed = await import_inbox(ctx, config)

    assert first.applied == 1
    assert again.duplicate_of == renamed.duplicate_of == "receipts-a.csv"
    assert "duplicate of 'receipts-a.csv'" in renamed.line()
    assert await on_hand(store, sku, "wh-east") == 3
    assert names(inbox) == ["processed"]
    assert again.moved_to is not None
    assert again.moved_to.name.startswith("receipts-a.")
    assert again.moved_to != first.moved_to


@pytest.mark.usefixtures("warehouses")
async def test_import_keeps_sales_made_after_the_snapshot_was_taken(
    ctx: EngineContext, config: WarehouseConfig, inbox: Path, store: RedisStockStore, sku: str
) -> None:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    await store.set_count(sku, "wh-east", 10, as_of_ms=now_ms - 2 * 3600_000)
    ten_minutes_ago = now_ms - 10 * 60_000
    await store.adjust(
        sku, "wh-east", -2, reason="sale", source="pos", source_event_id=f"sale-{sku}",
        occurred_at_ms=ten_minutes_ago,
    )  # fmt: skip
    (inbox / "snapshot.jsonl").write_text(
        json.dumps({"sku": sku, "location_id": "wh-east", "on_hand": 20, "as_of": ago(60)}) + "\n"
    )

    [summary] = await import_inbox(ctx, config)

    # counted 20 an hour ago, sold 2 ten minutes ago: 18, not 20
    assert summary.applied == 1
    assert await on_hand(store, sku, "wh-east") == 18


class CrashingImporter(FileImporter):
    """Dies like a killed process after ``batches`` batches of a file were applied."""

    batches = 2

    async def _apply_batch(
        self,
        batch: Batch,
        summary: FileSummary,
        report: RejectsReport,
        transfers: TransferReceipts | None = None,
    ) -> None:
        if self.batches == 0:
            raise RuntimeError("killed mid-file")
        self.batches -= 1
        await super()._apply_batch(batch, summary, report, transfers)


@pytest.mark.usefixtures("warehouses")
async def test_import_after_a_crash_mid_file_applies_each_row_once(
    ctx: EngineContext, config: WarehouseConfig, inbox: Path, store: RedisStockStore, sku: str
) -> None:
    rows = [f"{sku}-{i % 4},wh-east,{i + 1},{ago(30)},GRN-{i}" for i in range(12)]
    rows.insert(3, f"{sku}-0,wh-east,many,{ago(30)},GRN-X")
    (inbox / "receipts.csv").write_text(RECEIPT_HEADER + "\n".join(rows) + "\n")
    connector = WarehouseConnector(config)

    with pytest.raises(RuntimeError, match="killed"):
        await connector.process_inbox(CrashingImporter(ctx, config, "warehouse"))
    assert (inbox / "receipts.csv").exists()  # not marked, not moved: it will be redone
    crashed = await on_hand(store, f"{sku}-0", "wh-east")
    [summary] = await import_inbox(ctx, config)

    expected = {j: sum(i + 1 for i in range(12) if i % 4 == j) for j in range(4)}
    assert crashed == 1 + 5  # the first two batches (six lines, one of them bad) were applied
    for j, units in expected.items():
        assert await on_hand(store, f"{sku}-{j}", "wh-east") == units
    assert (summary.duplicate, summary.applied, summary.rejected) == (5, 7, 1)
    assert summary.rejects is not None
    assert len(summary.rejects.read_text().splitlines()) == 2  # header + the one bad row


async def test_import_rejects_a_file_of_unknown_kind_whole(
    ctx: EngineContext, config: WarehouseConfig, inbox: Path
) -> None:
    (inbox / "prices.csv").write_text("sku,price\nA,3\n")

    [summary] = await import_inbox(ctx, config)

    assert (summary.kind, summary.rejected, summary.applied) == ("unknown", 1, 0)
    assert summary.rejects is not None
    assert "unknown_kind" in summary.rejects.read_text()
    assert (config.processed / "prices.csv").exists()


def test_ready_files_skips_partial_uploads_and_files_still_changing(inbox: Path) -> None:
    for name in ("b.csv", "a.jsonl", "c.csv.part", "notes.txt"):
        (inbox / name).write_text("x")
    (inbox / "processed").mkdir()

    now = max(p.stat().st_mtime for p in inbox.iterdir())
    assert [p.name for p in ready_files(inbox, 0, now)] == ["a.jsonl", "b.csv"]
    assert ready_files(inbox, 60, now) == []


async def test_run_once_processes_the_inbox_and_returns(
    ctx: EngineContext, config: WarehouseConfig, inbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (inbox / "empty.csv").write_text(SNAPSHOT_HEADER)
    await create({"inbox": str(inbox), "settle_seconds": 0, "once": True}).run(ctx)
    assert "warehouse: empty.csv: snapshot, 0 rows" in capsys.readouterr().out
    assert await create({"inbox": str(inbox)}).drift(ctx) is None


def test_create_loads_the_example_config() -> None:
    import tomllib

    example = Path(__file__).parents[2] / "connectors" / "examples" / "warehouse.toml"
    with example.open("rb") as fh:
        connector = create(tomllib.load(fh)["warehouse"])
    assert connector.config.inbox == Path("/var/lib/stocksync/wms/inbox")
    assert connector.config.processed == Path("/var/lib/stocksync/wms/processed")
