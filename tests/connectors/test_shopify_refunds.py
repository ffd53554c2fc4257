"""Shopify ``refunds/create`` -> an engine return: the mapping (pure), then the webhook through
the connector against the real store."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.framework.commands import RecordReturn, ReturnedUnits, Unmappable
from connectors.shopify.config import ShopifyIdMap
from connectors.shopify.refunds import Refund, RefundPlan, refund_plan
from stocksync.domain.model import MAX_QTY, Disposition
from tests.support.shopify_payloads import refund

SHOP_LOC, SHOP_LOC2 = 487838322, 655441491
IDMAP = ShopifyIdMap(
    skus={"gid://shopify/InventoryItem/808950810": "IPOD2008RED"},
    locations={
        f"gid://shopify/Location/{SHOP_LOC}": "store-a",
        f"gid://shopify/Location/{SHOP_LOC2}": "store-b",
    },
    variants={"49148385": "IPOD2008RED"},
)


def plan(payload: dict[str, Any], disposition: Disposition = Disposition.RESTOCK) -> RefundPlan:
    return refund_plan(Refund.model_validate(payload), IDMAP, disposition)


def test_refund_plan_documented_example_returns_its_line_linked_to_the_order() -> None:
    assert plan(refund()) == RefundPlan(
        RecordReturn(
            "shopify-refund-929361464",
            (ReturnedUnits("IPOD2008RED", "store-a", 1, Disposition.RESTOCK),),
            "shopify",
            reservation_id="shopify-order-450789469",
            link_if_found=True,
        ),
        {},
    )


@pytest.mark.parametrize("disposition", list(Disposition))
def test_refund_plan_takes_the_configured_disposition(disposition: Disposition) -> None:
    found = plan(refund(), disposition).command
    assert found is not None
    assert [line.disposition for line in found.lines] == [disposition]


def test_refund_plan_counts_lines_that_are_not_returns_and_returns_the_rest() -> None:
    payload = refund(
        lines=[
            ("IPOD2008RED", 2, "return", SHOP_LOC),
            ("IPOD2008RED", 1, "no_restock", None),
            ("IPOD2008RED", 1, "cancel", SHOP_LOC),
            ("IPOD2008RED", 1, "return", SHOP_LOC2),
            ("IPOD2008RED", 3, "return", SHOP_LOC),
        ]
    )
    found = plan(payload)
    assert found.skipped == {"no_restock": 1, "cancel": 1}
    assert found.command is not None
    assert [(line.location_id, line.qty) for line in found.command.lines] == [
        ("store-a", 5),
        ("store-b", 1),
    ]


def test_refund_plan_without_a_returned_line_is_no_return() -> None:
    payload = refund(lines=[("IPOD2008RED", 1, "no_restock", None)])
    assert plan(payload) == RefundPlan(None, {"no_restock": 1})


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (("IPOD2008RED", 1, "return", None), "without a location_id"),
        (("IPOD2008RED", 1, "return", 99), "not in \\[locations\\]"),
        (("NOT-OURS", 1, "return", SHOP_LOC), "not in the mapping file"),
        (("IPOD2008RED", MAX_QTY + 1, "return", SHOP_LOC), f"more than {MAX_QTY}"),
    ],
)
def test_refund_plan_unmappable_return_line_spoils_the_refund(
    line: tuple[str, int, str, int | None], why: str
) -> None:
    payload = refund(lines=[("IPOD2008RED", 1, "return", SHOP_LOC), line])
    with pytest.raises(Unmappable, match=why):
        plan(payload)


def test_refund_plan_skips_unmapped_lines_when_told_to() -> None:
    payload = refund(lines=[("NOT-OURS", 1, "return", SHOP_LOC)])
    found = refund_plan(
        Refund.model_validate(payload), IDMAP, Disposition.RESTOCK, ignore_unmapped=True
    )
    assert found == RefundPlan(None, {"unmapped": 1})


def test_refund_model_refuses_a_line_without_restock_type() -> None:
    payload = refund()
    del payload["refund_line_items"][0]["restock_type"]
    with pytest.raises(ValueError, match="restock_type"):
        Refund.model_validate(payload)
