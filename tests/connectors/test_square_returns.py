"""Square till returns and waste -> engine returns and bucket moves: the mapping (pure), then
through the poller against the Square stub and the real store."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.framework.commands import MoveUnits, RecordReturn, ReturnedUnits, Unmappable
from connectors.framework.config import IdMap
from connectors.square.config import SquareConfig
from connectors.square.mapping import BucketRules, map_change, return_id
from stocksync.domain.model import MAX_QTY, Disposition
from tests.support.square_payloads import adjustment

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
