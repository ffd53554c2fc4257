"""Warehouse rows to engine commands, and files to rows: pure, no engine."""

from __future__ import annotations

import io
from typing import Any

import pytest

from connectors.framework.commands import Adjust, SetCount
from connectors.warehouse.files import MAX_LINE_BYTES, RowReader, UnknownFileKind
from connectors.warehouse.mapping import (
    FileKind,
    RowRejected,
    to_receipt,
    to_snapshot_count,
)

AS_OF = "2024-05-02T06:00:00+02:00"
AS_OF_MS = 1714622400000
SNAPSHOT = {"sku": "SOFA-1", "location_id": "wh-east", "on_hand": "12", "as_of": AS_OF}
RECEIPT = {
    "sku": "SOFA-1",
    "location_id": "wh-east",
    "qty": "5",
    "received_at": "2024-05-02T07:30:00Z",
    "receipt_id": "GRN-2024-0042",
}


def reader(text: str, suffix: str = ".csv") -> RowReader:
    return RowReader(io.BytesIO(text.encode()), suffix)


def test_to_snapshot_count_maps_a_row_with_a_stable_event_id() -> None:
    assert to_snapshot_count(SNAPSHOT, "wms") == SetCount(
        "SOFA-1", "wh-east", 12, AS_OF_MS, "wms", f"snapshot:SOFA-1:wh-east:{AS_OF_MS}"
    )


def test_to_receipt_maps_a_row_to_a_positive_delta_at_received_at() -> None:
    assert to_receipt(RECEIPT, "wms") == Adjust(
        "SOFA-1",
        "wh-east",
        5,
        "receipt",
        "wms",
        "receipt:GRN-2024-0042:SOFA-1:wh-east",
        1714635000000,
    )


def test_to_snapshot_count_takes_json_integers() -> None:
    assert to_snapshot_count({**SNAPSHOT, "on_hand": 0}, "wms").on_hand == 0


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"on_hand": "twelve"}, "bad_number"),
        ({"on_hand": "1.5"}, "bad_number"),
        ({"on_hand": 1.5}, "bad_number"),
        ({"on_hand": True}, "bad_number"),
        ({"on_hand": "-3"}, "negative"),
        ({"on_hand": "1000000001"}, "too_large"),
        ({"on_hand": "99999999999999999999999"}, "bad_number"),
        ({"on_hand": ""}, "missing_field"),
        ({"as_of": None}, "missing_field"),
        ({"as_of": "yesterday"}, "bad_timestamp"),
        ({"as_of": "2024-05-02T06:00:00"}, "naive_timestamp"),
        ({"sku": "SOFA 1"}, "bad_sku"),
        ({"sku": "S" * 65}, "bad_sku"),
        ({"sku": 7}, "bad_field"),
        ({"location_id": "WH East"}, "bad_location"),
    ],
)
def test_to_snapshot_count_rejects_bad_rows(change: dict[str, Any], code: str) -> None:
    with pytest.raises(RowRejected) as rejected:
        to_snapshot_count({**SNAPSHOT, **change}, "wms")
    assert rejected.value.code == code
    assert str(rejected.value).startswith(f"{code}: ")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"qty": "0"}, "bad_number"),
        ({"qty": "-2"}, "negative"),
        ({"qty": "1000001"}, "too_large"),
        ({"receipt_id": "GRN 42"}, "bad_receipt_id"),
        ({"receipt_id": ""}, "missing_field"),
        ({"received_at": "2024-13-40T00:00:00Z"}, "bad_timestamp"),
    ],
)
def test_to_receipt_rejects_bad_rows(change: dict[str, Any], code: str) -> None:
    with pytest.raises(RowRejected) as rejected:
        to_receipt({**RECEIPT, **change}, "wms")
    assert rejected.value.code == code


def test_row_reader_tells_a_snapshot_csv_by_its_header_in_any_column_order() -> None:
    rows = reader("as_of,sku,on_hand,location_id\r\n" + f"{AS_OF},SOFA-1,12,wh-east\r\n\r\n")
    assert rows.kind is FileKind.SNAPSHOT
    [row] = list(rows)
    assert (row.line, row.fields) == (2, SNAPSHOT)


def test_row_reader_tells_a_receipt_csv_and_reports_line_numbers() -> None:
    text = "sku,location_id,qty,received_at,receipt_id\nA,wh,1,2024-05-02T07:30:00Z,G1\n\nB,wh,2\n"
    rows = reader(text)
    assert rows.kind is FileKind.RECEIPT
    first, short = list(rows)
    assert first.line == 2
    assert first.fields is not None
    assert short.line == 4
    assert short.fields is None
    assert short.error is not None
    assert short.error.code == "wrong_fields"
    assert short.text == "B,wh,2"


def test_row_reader_tells_jsonl_kinds_by_keys_even_when_the_first_row_is_bad() -> None:
    rows = reader('{"sku": "A", "location_id": "wh", "on_hand": -1}\nnot json\n[1]\n', ".jsonl")
    assert rows.kind is FileKind.SNAPSHOT
    first, bad, array = list(rows)
    assert first.fields == {"sku": "A", "location_id": "wh", "on_hand": -1}
    assert bad.error is not None
    assert bad.error.code == "bad_json"
    assert array.error is not None
    assert array.error.code == "bad_json"


def test_row_reader_rejects_unexpected_jsonl_keys() -> None:
    line = '{"sku": "A", "location_id": "wh", "qty": 1, "received_at": "x", "receipt_id": "G"'
    rows = reader(line + ', "price": 3}\n', ".jsonl")
    [row] = list(rows)
    assert row.error is not None
    assert row.error.code == "wrong_fields"


def test_row_reader_rejects_an_oversized_line_without_keeping_it() -> None:
    long_sku = "A" * (MAX_LINE_BYTES + 10)
    text = f"sku,location_id,on_hand,as_of\n{long_sku},wh,1,{AS_OF}\nB,wh,2,{AS_OF}\n"
    too_long, fine = list(reader(text))
    assert too_long.error is not None
    assert too_long.error.code == "too_long"
    assert too_long.text == ""
    assert too_long.line == 2
    assert fine.line == 3
    assert fine.fields is not None
    assert fine.fields["sku"] == "B"


def test_row_reader_rejects_bad_utf8_rows() -> None:
    data = b"sku,location_id,on_hand,as_of\nA\xff,wh,1,x\n"
    [row] = list(RowReader(io.BytesIO(data), ".csv"))
    assert row.error is not None
    assert row.error.code == "bad_encoding"


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ("sku,location_id,price\nA,wh,3\n", ".csv"),
        ("sku,location_id,on_hand,as_of,on_hand\n", ".csv"),
        ("", ".csv"),
        ('{"sku": "A"}\n', ".jsonl"),
        ("[]\n", ".jsonl"),
    ],
)
def test_row_reader_refuses_a_file_of_unknown_kind(text: str, suffix: str) -> None:
    with pytest.raises(UnknownFileKind):
        reader(text, suffix)
