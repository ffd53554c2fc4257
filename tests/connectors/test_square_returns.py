"""Square till returns and waste -> engine returns and bucket moves: the mapping (pure), then
through the poller against the Square stub and the real store."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.framework.commands import MoveUnits, RecordReturn, ReturnedUnits, Unmappable
from connectors.framework.config import IdMap
from connectors.framework.state import ConnectorState
from connectors.square.config import SquareConfig
from connectors.square.connector import SquareConnector, create
from connectors.square.mapping import BucketRules, map_change, return_id
from stocksync.domain.errors import NotFound
from stocksync.domain.model import MAX_QTY, Disposition, Location, Position
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore
from tests.support.square_connector import LOC as LOC_A
from tests.support.square_connector import SQ_LOC, config_table, write_mapping
from tests.support.square_payloads import adjustment, ago, inventory_count
from tests.support.square_stub import SquareStub
from tests.support.stub_server import StubServer

ITEM, LOC = "W62UWFY35CWMYGVWK6TWJDNI", "C6W5YS5QM06F5"
IDS = IdMap(skus={ITEM: "TEE-RED-M"}, locations={LOC: "store-berlin-mitte"})
PREFIX = "stocksync:"
WHEN = "2016-11-16T22:24:49.028Z"
WHEN_MS = 1479335089028


def restocked(change_id: str, qty: str = "1", from_state: str = "RETURNED_BY_CUSTOMER") -> Any:
    return adjustment(change_id, ITEM, LOC, qty, WHEN, from_state, "IN_STOCK")


def wasted(change_id: str, qty: str = "1", reason: str | None = None) -> Any:
    extra = {} if reason is None else {"reason_id": {"type": reason}}
    return adjustment(change_id, ITEM, LOC, qty, WHEN, "IN_STOCK", "WASTE", **extra)


@pytest.mark.parametrize("disposition", list(Disposition))
def test_map_change_restocked_till_return_is_an_unlinked_return_with_the_disposition(
    disposition: Disposition,
) -> None:
    rules = BucketRules(return_disposition=disposition)
    assert map_change(restocked("5SVGR2RUIZFK6WIPWYW77AY7", "2"), IDS, PREFIX, None, rules) == [
        RecordReturn(
            "square:5SVGR2RUIZFK6WIPWYW77AY7",
            (ReturnedUnits("TEE-RED-M", "store-berlin-mitte", 2, disposition),),
            "square",
            reservation_id=None,
            occurred_at_ms=WHEN_MS,
        )
    ]


def test_map_change_return_is_inspected_unless_configured() -> None:
    [cmd] = map_change(restocked("ADJ1"), IDS, PREFIX)
    assert isinstance(cmd, RecordReturn)
    assert [line.disposition for line in cmd.lines] == [Disposition.INSPECT]


def test_map_change_unlinked_return_into_stock_is_a_return_too() -> None:
    [cmd] = map_change(restocked("ADJ2", from_state="UNLINKED_RETURN"), IDS, PREFIX)
    assert isinstance(cmd, RecordReturn)
    assert (cmd.return_id, cmd.reservation_id) == ("square:ADJ2", None)


def test_map_change_refund_without_restock_changes_nothing() -> None:
    """SOLD -> RETURNED_BY_CUSTOMER: refunded, but "not yet available for sale" (Square's
    InventoryState); only the move on to IN_STOCK brings the units back."""
    raw = adjustment("ADJ3", ITEM, LOC, "1", WHEN, "SOLD", "RETURNED_BY_CUSTOMER")
    assert map_change(raw, IDS, PREFIX) == []


def test_return_id_is_stable_and_fits_the_engine_for_any_adjustment_id() -> None:
    assert return_id("ADJ1") == return_id("ADJ1") == "square:ADJ1"
    long = return_id("x" * 200)
    assert long.startswith("sha256:")
    assert len(long) <= 128
    assert long != return_id("x" * 201)


def test_map_change_waste_without_a_reason_is_written_off() -> None:
    assert map_change(wasted("ADJ4", "3"), IDS, PREFIX) == [
        MoveUnits(
            "TEE-RED-M",
            "store-berlin-mitte",
            3,
            "on_hand",
            "written_off",
            "waste",
            "square",
            "ADJ4",
            WHEN_MS,
        )
    ]


def test_map_change_waste_with_reason_damaged_moves_to_damaged() -> None:
    [cmd] = map_change(wasted("ADJ5", reason="DAMAGED"), IDS, PREFIX)
    assert isinstance(cmd, MoveUnits)
    assert (cmd.from_bucket, cmd.to_bucket, cmd.reason) == ("on_hand", "damaged", "damaged")


@pytest.mark.parametrize(("reason", "label"), [("THEFT", "theft"), ("CUSTOM", "waste")])
def test_map_change_waste_for_another_reason_is_written_off_with_it(
    reason: str, label: str
) -> None:
    [cmd] = map_change(wasted("ADJ6", reason=reason), IDS, PREFIX)
    assert isinstance(cmd, MoveUnits)
    assert (cmd.to_bucket, cmd.reason) == ("written_off", label)


def test_map_change_waste_buckets_follow_the_rules() -> None:
    rules = BucketRules(waste_to="damaged", damaged_waste_to="written_off")
    [plain] = map_change(wasted("ADJ7"), IDS, PREFIX, None, rules)
    [damaged] = map_change(wasted("ADJ8", reason="DAMAGED"), IDS, PREFIX, None, rules)
    assert isinstance(plain, MoveUnits)
    assert isinstance(damaged, MoveUnits)
    assert (plain.to_bucket, damaged.to_bucket) == ("damaged", "written_off")


@pytest.mark.parametrize("raw", [restocked("ADJ9", str(MAX_QTY + 1)), wasted("ADJ9", "1e6")])
def test_map_change_return_or_waste_beyond_a_line_is_unmappable(raw: Any) -> None:
    with pytest.raises(Unmappable, match="per line"):
        map_change(raw, IDS, PREFIX)


def test_map_change_return_of_an_unmapped_item_is_unmappable() -> None:
    raw = adjustment("ADJ10", "NOT-OURS", LOC, "1", WHEN, "RETURNED_BY_CUSTOMER", "IN_STOCK")
    with pytest.raises(Unmappable, match="mapping file"):
        map_change(raw, IDS, PREFIX)


def test_config_reads_the_returns_and_waste_tables(tmp_path: Any) -> None:
    base = {"access_token": "t", "mapping_file": str(tmp_path / "m.toml")}
    config = SquareConfig.parse(
        {**base, "returns": {"disposition": "restock"}, "waste": {"to": "damaged"}}
    )
    assert config.bucket_rules() == BucketRules(Disposition.RESTOCK, "damaged", "damaged")
    assert SquareConfig.parse(base).bucket_rules() == BucketRules()
    for bad in ({"returns": {"disposition": "resell"}}, {"waste": {"to": "on_hand"}}):
        with pytest.raises(ValueError, match=r"returns|waste"):
            SquareConfig.parse({**base, **bad})


# -- through the poller: the Square stub on loopback, the real store ---------------------


@dataclass
class Square:
    stub: SquareStub
    url: str
    mapping: Path
    sku: str

    def connector(self, **table: Any) -> SquareConnector:
        return create(config_table(self.url, self.mapping, **table))


@pytest.fixture
async def square(
    stub_server: StubServer, store: RedisStockStore, tmp_path: Path, sku: str
) -> AsyncIterator[Square]:
    await store.upsert_location(Location(LOC_A, "Store A", "store", 52.52, 13.40, True, True))
    await store.set_count(sku, LOC_A, 5, as_of_ms=int(time.time() * 1000) - 3_600_000)
    mapping = write_mapping(tmp_path / "square-mapping.toml", {ITEM: sku})
    stub = SquareStub()
    async with stub_server(stub.app()) as url:
        yield Square(stub, url, mapping, sku)


def change(change_id: str, from_state: str, to_state: str, qty: str = "2", **extra: Any) -> Any:
    return adjustment(change_id, ITEM, SQ_LOC, qty, ago(minutes=5), from_state, to_state, **extra)


def buckets(position: Position) -> tuple[int, int, int]:
    return position.on_hand, position.quality_control, position.damaged


@pytest.mark.parametrize(
    ("disposition", "after"),
    [("restock", (7, 0, 0)), ("inspect", (5, 2, 0)), ("damaged", (5, 0, 2))],
)
async def test_sync_once_restocked_till_return_is_recorded_with_the_disposition(
    square: Square,
    ctx: EngineContext,
    store: RedisStockStore,
    disposition: str,
    after: tuple[int, int, int],
) -> None:
    square.stub.changes = [change("RET1", "RETURNED_BY_CUSTOMER", "IN_STOCK")]
    connector = square.connector(returns={"disposition": disposition})
    summary = await connector.sync_once(ctx)
    assert summary.outcomes == {"applied": 1}
    assert buckets(await store.position(square.sku, LOC_A)) == after
    recorded = await store.get_return("square:RET1")
    assert recorded.reservation_id is None
    assert [(ln.sku, ln.location_id, ln.qty, ln.disposition.value) for ln in recorded.lines] == [
        (square.sku, LOC_A, 2, disposition)
    ]


@pytest.mark.parametrize(
    ("table", "reason", "after"),
    [
        ({}, "DAMAGED", (3, 0, 2)),
        ({}, None, (3, 0, 0)),
        ({"waste": {"to": "damaged"}}, None, (3, 0, 2)),
        ({"waste": {"damaged_to": "written_off"}}, "DAMAGED", (3, 0, 0)),
    ],
)
async def test_sync_once_waste_moves_units_out_of_on_hand(
    square: Square,
    ctx: EngineContext,
    store: RedisStockStore,
    table: dict[str, Any],
    reason: str | None,
    after: tuple[int, int, int],
) -> None:
    extra = {} if reason is None else {"reason_id": {"type": reason}}
    square.stub.changes = [change("W1", "IN_STOCK", "WASTE", **extra)]
    summary = await square.connector(**table).sync_once(ctx)
    assert summary.outcomes == {"applied": 1}
    assert buckets(await store.position(square.sku, LOC_A)) == after


async def test_sync_once_reread_returns_and_waste_change_stock_once(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    square.stub.changes = [
        change("RET1", "RETURNED_BY_CUSTOMER", "IN_STOCK"),
        change("W1", "IN_STOCK", "WASTE", "1", reason_id={"type": "DAMAGED"}),
    ]
    connector = square.connector()
    first = await connector.sync_once(ctx)
    once = await store.position(square.sku, LOC_A)
    ConnectorState(ctx.engine, "square").save_checkpoint("")  # sweep it all again
    again = await connector.sync_once(ctx)
    assert (first.outcomes, again.outcomes) == ({"applied": 2}, {"duplicate": 2})
    assert await store.position(square.sku, LOC_A) == once
    assert buckets(once) == (4, 2, 1)


async def test_sync_once_refused_or_unmappable_changes_are_dead_lettered_and_change_nothing(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    square.stub.changes = [
        change("W1", "IN_STOCK", "WASTE", "9"),  # more than the 5 on hand
        adjustment("RET2", "NOT-OURS", SQ_LOC, "1", ago(minutes=4), "UNLINKED_RETURN", "IN_STOCK"),
    ]
    before = await store.position(square.sku, LOC_A)
    summary = await square.connector().sync_once(ctx)
    assert summary.outcomes == {"dead_letter": 2}
    reasons = sorted(x.reason for x in ConnectorState(ctx.engine, "square").dead_letters())
    assert reasons[0].startswith("catalog object 'NOT-OURS'")
    assert reasons[1].startswith("insufficient_units")
    assert await store.position(square.sku, LOC_A) == before
    with pytest.raises(NotFound):
        await store.get_return("square:RET2")


@pytest.mark.parametrize(
    ("from_state", "to_state", "counted"),
    [("RETURNED_BY_CUSTOMER", "IN_STOCK", "7"), ("IN_STOCK", "WASTE", "3")],
)
async def test_sync_once_squares_count_of_a_return_or_waste_counts_it_once(
    square: Square,
    ctx: EngineContext,
    store: RedisStockStore,
    from_state: str,
    to_state: str,
    counted: str,
) -> None:
    """Square's count of the very change (computed before the poller applied it) already has
    it: the as-of rule must not add it again (the change is recorded when it occurred)."""
    square.stub.changes = [change("C1", from_state, to_state)]
    square.stub.counts = [inventory_count(ITEM, SQ_LOC, counted, ago(minutes=4))]
    summary = await square.connector(returns={"disposition": "restock"}).sync_once(ctx)
    assert (summary.outcomes, summary.count_outcomes) == ({"applied": 1}, {"applied": 1})
    assert (await store.position(square.sku, LOC_A)).on_hand == int(counted)
