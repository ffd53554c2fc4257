"""Ledger rows of the stock beyond the shelf: the bucket deltas get their columns (0 when an
event has none), everything else the contract names stays in ``details``."""

from __future__ import annotations

import json
from typing import Any

from stocksync.ledger.movements import movement_row
from stocksync.ledger.rows import MOVEMENT_COLUMNS, build, sqlite_time
from stocksync.store.outbox import decode_event
from tests.support.shelf_ledger import ShelfStory

NS = "rows"


def rows_of(story: ShelfStory) -> list[dict[str, Any]]:
    built = build(NS, story.entries, sqlite_time, "now").movements
    return [dict(zip(MOVEMENT_COLUMNS, row, strict=True)) for row in built]


def test_movement_columns_name_the_three_bucket_deltas_once() -> None:
    deltas = [c for c in MOVEMENT_COLUMNS if c.startswith("d_")]
    assert deltas == ["d_on_hand", "d_reserved", "d_damaged", "d_quality_control", "d_in_transit"]


def test_build_puts_each_bucket_delta_in_its_column_and_the_rest_in_details() -> None:
    story = ShelfStory("S1")
    story.count("store-a", 10)
    story.bucket(
        "stock_moved",
        "store-a",
        2,
        {"on_hand": -2, "damaged": 2},
        **{"from": "on_hand", "to": "damaged", "reason": "broken", "src": "till", "src_id": "m1"},
    )
    story.bucket("returned", "store-a", 1, {"quality_control": 1}, ret="ret-1", disp="inspect")
    story.bucket("transfer_shipped", "store-a", 3, {"in_transit": 3}, xfer="t-1", exp="")
    counted, moved, returned, shipped = rows_of(story)

    deltas = ("d_on_hand", "d_reserved", "d_damaged", "d_quality_control", "d_in_transit")
    assert [tuple(r[c] for c in deltas) for r in (counted, moved, returned, shipped)] == [
        (10, 0, 0, 0, 0),
        (-2, 0, 2, 0, 0),
        (0, 0, 0, 1, 0),
        (0, 0, 0, 0, 3),
    ]
    assert (moved["qty"], moved["on_hand"], moved["reason"], moved["source_event_id"]) == (
        2,
        8,
        "broken",
        "m1",
    )
    assert json.loads(moved["details"]) == {
        "from": "on_hand",
        "to": "damaged",
        "damaged": "2",
        "quality_control": "0",
        "in_transit": "0",
    }
    assert json.loads(returned["details"])["ret"] == "ret-1"
    # The values after it ride in details (on_hand and reserved have columns).
    assert json.loads(shipped["details"]) == {
        "xfer": "t-1",
        "exp": "",
        "damaged": "2",
        "quality_control": "1",
        "in_transit": "3",
    }


def test_events_without_bucket_deltas_get_zeros_and_supply_fields_stay_in_details() -> None:
    story = ShelfStory("S2")
    story.supply("incoming_set", "store-a", 5, supply="po-1", exp="1790000500000", prev="0")
    (row,) = rows_of(story)
    assert (row["d_damaged"], row["d_quality_control"], row["d_in_transit"]) == (0, 0, 0)
    assert (row["qty"], row["on_hand"]) == (5, None)
    assert json.loads(row["details"]) == {"supply": "po-1", "exp": "1790000500000", "prev": "0"}


def test_movement_row_of_a_decoded_event_has_the_bucket_columns() -> None:
    story = ShelfStory("S3")
    story.bucket("transfer_received", "store-b", 4, {"in_transit": -5, "on_hand": 4}, xfer="t")
    ((stream_id, fields),) = story.entries
    row = movement_row(decode_event(NS, stream_id, fields))
    assert (row["d_on_hand"], row["d_in_transit"], row["d_damaged"]) == (4, -5, 0)
