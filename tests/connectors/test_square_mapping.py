"""Square payloads -> engine commands, from payloads shaped like Square's documented examples."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from connectors.framework.commands import (
    Adjust,
    MoveUnits,
    RecordReturn,
    Sale,
    SetCount,
    Unmappable,
)
from connectors.framework.config import IdMap
from connectors.square.mapping import (
    map_change,
    map_count,
    parse_quantity,
)
from connectors.square.webhook import sign, verify
from tests.support.square_payloads import adjustment, inventory_count, physical_count, transfer

ITEM, LOC = "W62UWFY35CWMYGVWK6TWJDNI", "C6W5YS5QM06F5"
IDS = IdMap(skus={ITEM: "TEE-RED-M"}, locations={LOC: "store-berlin-mitte"})
LOC2 = "L9PJX0H2D0M6V"
IDS2 = IdMap(skus=IDS.skus, locations={**IDS.locations, LOC2: "store-potsdam"})
PREFIX = "stocksync:"
WHEN = "2016-11-16T22:24:49.028Z"
WHEN_MS = 1479335089028


def test_map_change_physical_count_sets_count_as_of_occurred_at() -> None:
    raw = physical_count("46YDTW253DWGGK9HMAE6XCAO", ITEM, LOC, "86", WHEN)
    assert map_change(raw, IDS, PREFIX) == [
        SetCount(
            "TEE-RED-M", "store-berlin-mitte", 86, WHEN_MS, "square", "46YDTW253DWGGK9HMAE6XCAO"
        )
    ]


def test_map_change_sale_is_a_sale_at_occurred_at() -> None:
    raw = adjustment("UDMOEO78BG2GLDQKOT7EBT3C", ITEM, LOC, "2", WHEN, "IN_STOCK", "SOLD")
    assert map_change(raw, IDS, PREFIX) == [
        Sale("TEE-RED-M", "store-berlin-mitte", 2, "square", "UDMOEO78BG2GLDQKOT7EBT3C", WHEN_MS)
    ]


def test_map_change_sale_referencing_a_reservation_names_it() -> None:
    raw = adjustment("ADJ1", ITEM, LOC, "1", WHEN, reference_id="stocksync:chat-4711")
    [sale] = map_change(raw, IDS, PREFIX)
    assert isinstance(sale, Sale)
    assert sale.reservation_id == "chat-4711"


def test_map_change_sale_with_a_foreign_reference_is_a_plain_sale() -> None:
    raw = adjustment("ADJ1", ITEM, LOC, "1", WHEN, reference_id="22c07cf4-5626-4224")
    [sale] = map_change(raw, IDS, PREFIX)
    assert isinstance(sale, Sale)
    assert sale.reservation_id is None


def test_map_change_receipt_adds_to_on_hand() -> None:
    raw = adjustment("ADJ2", ITEM, LOC, "5.00000", WHEN, "NONE", "IN_STOCK")
    assert map_change(raw, IDS, PREFIX) == [
        Adjust("TEE-RED-M", "store-berlin-mitte", 5, "receipt", "square", "ADJ2", WHEN_MS)
    ]


def test_map_change_waste_takes_from_on_hand() -> None:
    raw = adjustment("ADJ3", ITEM, LOC, "1", WHEN, "IN_STOCK", "WASTE")
    [cmd] = map_change(raw, IDS, PREFIX)
    assert isinstance(cmd, MoveUnits)  # the units and buckets: test_square_returns.py
    assert (cmd.qty, cmd.from_bucket, cmd.source_event_id) == (1, "on_hand", "ADJ3")


def test_map_change_customer_return_is_a_return() -> None:
    raw = adjustment("ADJ4", ITEM, LOC, "1", WHEN, "RETURNED_BY_CUSTOMER", "IN_STOCK")
    [cmd] = map_change(raw, IDS, PREFIX)
    assert isinstance(cmd, RecordReturn)  # dispositions: test_square_returns.py
    assert [(line.sku, line.qty) for line in cmd.lines] == [("TEE-RED-M", 1)]


def test_map_change_move_between_other_states_maps_to_nothing() -> None:
    raw = adjustment("ADJ5", ITEM, LOC, "3", WHEN, "RESERVED_FOR_SALE", "SOLD")
    assert map_change(raw, IDS, PREFIX) == []


def test_map_change_count_of_another_state_maps_to_nothing() -> None:
    raw = physical_count("PC2", ITEM, LOC, "4", WHEN, state="WASTE")
    assert map_change(raw, IDS, PREFIX) == []


def test_map_change_unmapped_catalog_object_is_unmappable() -> None:
    raw = adjustment("ADJ6", "UNKNOWN-VARIATION", LOC, "1", WHEN)
    with pytest.raises(Unmappable, match="UNKNOWN-VARIATION"):
        map_change(raw, IDS, PREFIX)


def test_map_change_unmapped_location_is_unmappable() -> None:
    raw = physical_count("PC3", ITEM, "OTHER-LOCATION", "1", WHEN)
    with pytest.raises(Unmappable, match="OTHER-LOCATION"):
        map_change(raw, IDS, PREFIX)


def test_map_change_fractional_quantity_is_unmappable() -> None:
    raw = adjustment("ADJ7", ITEM, LOC, "1.5", WHEN)
    with pytest.raises(Unmappable, match="whole number"):
        map_change(raw, IDS, PREFIX)


def test_map_change_without_its_object_is_unmappable() -> None:
    with pytest.raises(Unmappable, match="TRANSFER"):
        map_change({"type": "TRANSFER"}, IDS, PREFIX)


def test_map_change_transfer_between_our_stores_moves_units_out_and_in() -> None:
    raw = transfer("TR1", ITEM, LOC, LOC2, "3", WHEN)
    assert map_change(raw, IDS2, PREFIX) == [
        Adjust("TEE-RED-M", "store-berlin-mitte", -3, "transfer_out", "square", "TR1:out", WHEN_MS),
        Adjust("TEE-RED-M", "store-potsdam", 3, "transfer_in", "square", "TR1:in", WHEN_MS),
    ]


def test_map_change_transfer_to_a_location_not_ours_only_moves_units_out() -> None:
    raw = transfer("TR2", ITEM, LOC, "ELSEWHERE", "2", WHEN)
    assert map_change(raw, IDS, PREFIX) == [
        Adjust("TEE-RED-M", "store-berlin-mitte", -2, "transfer_out", "square", "TR2:out", WHEN_MS)
    ]


def test_map_change_transfer_between_locations_not_ours_is_unmappable() -> None:
    with pytest.raises(Unmappable, match="neither location"):
        map_change(transfer("TR3", ITEM, "A", "B", "1", WHEN), IDS, PREFIX)


def test_map_change_transfer_of_units_not_in_stock_maps_to_nothing() -> None:
    assert map_change(transfer("TR4", ITEM, LOC, LOC2, "1", WHEN, "WASTE"), IDS2, PREFIX) == []


def test_map_change_missing_field_is_unmappable() -> None:
    raw = adjustment("ADJ8", ITEM, LOC, "1", WHEN)
    del raw["adjustment"]["occurred_at"]
    with pytest.raises(Unmappable, match="occurred_at"):
        map_change(raw, IDS, PREFIX)


def test_map_change_timestamp_without_offset_is_unmappable() -> None:
    raw = adjustment("ADJ9", ITEM, LOC, "1", "2016-11-16T22:24:49")
    with pytest.raises(Unmappable, match="UTC offset"):
        map_change(raw, IDS, PREFIX)


@pytest.mark.parametrize("text", ["-1", "1.5", "NaN", "Infinity", "", "1e12", "abc"])
def test_parse_quantity_rejects_what_is_not_whole_units(text: str) -> None:
    with pytest.raises(Unmappable):
        parse_quantity(text)


@pytest.mark.parametrize(("text", "units"), [("0", 0), ("3", 3), ("3.00000", 3), ("1E+1", 10)])
def test_parse_quantity_accepts_whole_units_in_any_decimal_form(text: str, units: int) -> None:
    assert parse_quantity(text) == units


def test_map_count_sets_count_as_of_calculated_at_keyed_by_event() -> None:
    raw = inventory_count(ITEM, LOC, "34", WHEN)
    assert map_count(raw, IDS, "ev-1") == SetCount(
        "TEE-RED-M", "store-berlin-mitte", 34, WHEN_MS, "square", f"ev-1:{ITEM}:{LOC}"
    )


def test_map_count_other_state_maps_to_nothing() -> None:
    assert map_count(inventory_count(ITEM, LOC, "2", WHEN, state="SOLD"), IDS, "ev") is None


def test_map_count_fractional_quantity_is_unmappable() -> None:
    with pytest.raises(Unmappable):
        map_count(inventory_count(ITEM, LOC, "0.25", WHEN), IDS, "ev")


URL = "https://stocksync.example/v1/connectors/square/webhook"
BODY = b'{"merchant_id":"6SSW7HV8K2ST5","type":"inventory.count.updated","event_id":"e"}'


def test_verify_accepts_square_signature_of_url_and_body() -> None:
    assert verify("sig-key", URL, BODY, sign("sig-key", URL, BODY))


def test_sign_matches_an_independent_hmac_of_url_then_body() -> None:
    expected = base64.b64encode(hmac.new(b"k", URL.encode() + BODY, hashlib.sha256).digest())
    assert sign("k", URL, BODY) == expected.decode()


@pytest.mark.parametrize(
    ("key", "url", "body"),
    [
        ("other-key", URL, BODY),
        ("sig-key", URL + "?x=1", BODY),
        ("sig-key", URL, BODY + b" "),
    ],
)
def test_verify_rejects_another_key_url_or_body(key: str, url: str, body: bytes) -> None:
    assert not verify("sig-key", URL, BODY, sign(key, url, body))


@pytest.mark.parametrize("signature", [None, "", "not-base64", "AAAA"])
def test_verify_rejects_missing_or_garbage_signature(signature: str | None) -> None:
    assert not verify("sig-key", URL, BODY, signature)
