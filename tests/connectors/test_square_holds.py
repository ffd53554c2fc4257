"""Hold codes read from a Square order (pure): where a cashier can write one, what is not one."""

from __future__ import annotations

import pytest

from connectors.square.holds import MAX_CODES_PER_SALE, codes_in, hold_codes
from connectors.square.mapping import TillSale, till_sale
from connectors.square.shapes import Order
from tests.support.square_payloads import adjustment, line_item, order

ITEM, OTHER, LOC = "W62UWFY35CWMYGVWK6TWJDNI", "AII3WT3Q6T4KRUSGOMJBSD4D", "C6W5YS5QM06F5"
WHEN = "2016-11-16T22:24:49.028Z"


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("K7M-Q2PX", ["K7MQ2PX"]),
        ("  k7mq2px ", ["K7MQ2PX"]),  # the whole field: dash optional, any case
        ("Abholung K7M-Q2PX, Geschenk", ["K7MQ2PX"]),
        ("K7M-Q2PX and H4C-9RTW", ["K7MQ2PX", "H4C9RTW"]),
        ("K7M-Q2PX twice: k7m-q2px", ["K7MQ2PX"]),
        ("PICKUP1", []),  # 1 and I are not in the alphabet
        ("gift wrap BETWEEN", []),  # inside text only the dashed form counts
        ("XK7M-Q2PXY", []),  # part of a longer token
        ("K0M-Q2PX", []),  # 0 is not in the alphabet
        ("", []),
        (None, []),
    ],
)
def test_codes_in_reads_whole_fields_and_dashed_codes_in_text(
    text: str | None, codes: list[str]
) -> None:
    assert codes_in(text) == codes


def test_codes_in_reads_no_further_than_squares_bound_on_a_note() -> None:
    assert codes_in("x" * 2_000 + " K7M-Q2PX") == []


def test_hold_codes_prefers_the_items_own_lines_then_the_reference_then_other_lines() -> None:
    raw = order(
        "O1",
        LOC,
        [
            line_item(OTHER, "1", note="H4C-9RTW"),
            line_item(ITEM, "1", note="K7M-Q2PX"),
        ],
        reference_id="M8N-3VBZ",
    )
    parsed = Order.model_validate(raw)
    assert hold_codes(parsed, ITEM) == ["K7MQ2PX", "M8N3VBZ", "H4C9RTW"]
    assert hold_codes(parsed, OTHER) == ["H4C9RTW", "M8N3VBZ", "K7MQ2PX"]


def test_hold_codes_are_bounded_per_sale() -> None:
    notes = " ".join(f"K7M-Q2P{c}" for c in "ABCDEFGH")
    parsed = Order.model_validate(order("O2", LOC, [line_item(ITEM, "1", note=notes)]))
    assert len(hold_codes(parsed, ITEM)) == MAX_CODES_PER_SALE


def test_till_sale_is_a_sale_with_an_order_and_no_reservation_of_its_own() -> None:
    sale = adjustment("A1", ITEM, LOC, "1", WHEN, transaction_id="ORDER-1")
    assert till_sale(sale, "stocksync:") == TillSale("A1", "ORDER-1", ITEM, LOC)


@pytest.mark.parametrize(
    "raw",
    [
        adjustment("A2", ITEM, LOC, "1", WHEN),  # no order behind it
        adjustment("A3", ITEM, LOC, "1", WHEN, transaction_id="O", reference_id="stocksync:r1"),
        adjustment("A4", ITEM, LOC, "1", WHEN, "NONE", "IN_STOCK", transaction_id="O"),
        {"type": "ADJUSTMENT", "adjustment": {"id": "broken"}},
    ],
)
def test_till_sale_is_none_for_anything_else(raw: dict[str, object]) -> None:
    assert till_sale(raw, "stocksync:") is None
