"""BOPIS collected at a Square till: the cashier puts the hold code on the sale's order, the
connector finds the hold through Square's Orders API, and the unit leaves on_hand exactly once
whether staff also press "Collected" on the store page or not, in either order, and when the
sale reaches the engine after a count that already misses the unit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.square.connector import SquareConnector, create
from connectors.square.poller import SweepSummary
from stocksync.plugins import EngineContext
from tests.support.api import position, post_ok
from tests.support.square_connector import (
    ITEM,
    LOC,
    OTHER_ITEM,
    SQ_LOC,
    config_table,
    write_mapping,
)
from tests.support.square_payloads import (
    adjustment,
    ago,
    inventory_count,
    line_item,
    order,
    physical_count,
)
from tests.support.square_stub import SquareStub
from tests.support.stub_server import StubServer

ON_HAND = 3


@dataclass
class Till:
    stub: SquareStub
    connector: SquareConnector
    ctx: EngineContext
    client: httpx.AsyncClient
    sku: str
    other_sku: str

    async def sync(self) -> SweepSummary:
        return await self.connector.sync_once(self.ctx)

    async def hold(self, reservation_id: str, qty: int = 1, sku: str | None = None) -> str:
        """A chat hold for pickup at the store; returns its hold code as shown (K7M-Q2PX)."""
        line = {"sku": sku or self.sku, "location_id": LOC, "qty": qty}
        body = {"reservation_id": reservation_id, "channel": "chat", "lines": [line]}
        held = await post_ok(self.client, "/v1/reservations", body)
        code: str = held["hold_code"]
        return code

    async def collected(self, reservation_id: str) -> None:
        """Staff press "Collected" on the store page."""
        await post_ok(self.client, f"/v1/reservations/{reservation_id}/fulfill")

    def ring_up(
        self,
        sale_id: str,
        lines: list[dict[str, Any]],
        reference_id: str | None = None,
        occurred_at: str | None = None,
    ) -> None:
        """A sale on Square POS: its order, and the inventory adjustment of each line, which
        carries the order's id as ``transaction_id`` and no reference of ours."""
        order_id = f"{sale_id}-ORDER"
        when = occurred_at or ago(minutes=2)
        self.stub.orders.append(order(order_id, SQ_LOC, lines, reference_id))
        for i, line in enumerate(lines):
            self.stub.changes.append(
                adjustment(
                    f"{sale_id}-{i}",
                    line["catalog_object_id"],
                    SQ_LOC,
                    line["quantity"],
                    when,
                    created_at=ago(seconds=1),
                    transaction_id=order_id,
                )
            )

    async def units(self, sku: str | None = None) -> tuple[int, int]:
        stock = await position(self.client, sku or self.sku, LOC)
        return stock["on_hand"], stock["reserved"]

    async def state(self, reservation_id: str) -> str:
        r = await self.client.get(f"/v1/reservations/{reservation_id}")
        assert r.status_code == 200, r.text
        state: str = r.json()["state"]
        return state


@pytest.fixture
async def till(
    stub_server: StubServer, ctx: EngineContext, client: httpx.AsyncClient, tmp_path: Path
) -> AsyncIterator[Till]:
    body = {"name": "Store A", "kind": "store", "lat": 52.52, "lon": 13.4, "pickup": True}
    r = await client.put(f"/v1/locations/{LOC}", json=body)
    assert r.status_code in (200, 201), r.text
    sku, other = ("TEE-" + uuid.uuid4().hex[:10] for _ in range(2))
    mapping = write_mapping(tmp_path / "square-mapping.toml", {ITEM: sku, OTHER_ITEM: other})
    stub = SquareStub(page_size=100)
    stub.changes = [
        physical_count("PC1", ITEM, SQ_LOC, str(ON_HAND), ago(minutes=60)),
        physical_count("PC2", OTHER_ITEM, SQ_LOC, str(ON_HAND), ago(minutes=60)),
    ]
    async with stub_server(stub.app()) as url:
        config = config_table(url, mapping, overlap_seconds=0)  # no re-reads to count
        till = Till(stub, create(config), ctx, client, sku, other)
        await till.sync()
        yield till


async def test_sale_with_the_hold_code_in_a_line_note_fulfils_the_hold(till: Till) -> None:
    code = await till.hold("chat-1")
    till.ring_up("SALE1", [line_item(ITEM, "1", note=f"Abholung {code}")])

    summary = await till.sync()

    assert summary.outcomes == {"applied": 1}
    assert await till.units() == (ON_HAND - 1, 0)
    assert await till.state("chat-1") == "fulfilled"


@pytest.mark.parametrize("where", ["order_reference", "bare_note"])
async def test_sale_finds_the_hold_code_in_the_order_reference_or_a_bare_note(
    till: Till, where: str
) -> None:
    code = await till.hold("chat-2")
    if where == "order_reference":  # an app that creates the order sets its reference_id
        till.ring_up("SALE2", [line_item(ITEM, "1")], reference_id=code)
    else:  # typed without the dash, in any case: the whole note is the code
        till.ring_up("SALE2", [line_item(ITEM, "1", note=code.replace("-", "").lower())])

    await till.sync()

    assert await till.units() == (ON_HAND - 1, 0)
    assert await till.state("chat-2") == "fulfilled"


@pytest.mark.parametrize("first", ["store_page", "till"])
async def test_collection_pressed_on_the_store_page_and_rung_up_takes_the_unit_once(
    till: Till, first: str
) -> None:
    code = await till.hold("chat-3")
    if first == "store_page":
        await till.collected("chat-3")
    till.ring_up("SALE3", [line_item(ITEM, "1", note=code)])
    summary = await till.sync()
    if first == "till":
        await till.collected("chat-3")  # the transition was taken: the same result again

    assert summary.outcomes == {"duplicate" if first == "store_page" else "applied": 1}
    assert await till.units() == (ON_HAND - 1, 0)
    assert await till.state("chat-3") == "fulfilled"
    await till.sync()  # Square's changes re-read: nothing moves
    assert await till.units() == (ON_HAND - 1, 0)


@pytest.mark.parametrize("pressed", ["never", "before_the_count", "after_the_count"])
async def test_sale_reaching_the_engine_after_a_count_that_misses_the_unit_takes_it_once(
    till: Till, pressed: str
) -> None:
    """Square's count is taken after the sale, so it already misses the unit, and reaches the
    engine before the sale does (a webhook, or the counts pass of a sweep that ran before
    Square listed the sale). The sale then only ends the hold (DESIGN rule 7); staff may have
    pressed "Collected" before that count was taken, or after it."""
    code = await till.hold("chat-4")
    sold_at = ago(minutes=2)
    if pressed == "before_the_count":
        await till.collected("chat-4")
    counted_at = ago(seconds=0) if pressed == "before_the_count" else ago(minutes=1)
    till.stub.counts = [inventory_count(ITEM, SQ_LOC, str(ON_HAND - 1), counted_at)]
    await till.sync()  # the count arrives; Square has not listed the sale yet
    if pressed == "after_the_count":
        await till.collected("chat-4")
    till.ring_up("SALE4", [line_item(ITEM, "1", note=code)], occurred_at=sold_at)

    await till.sync()

    assert await till.units() == (ON_HAND - 1, 0)
    assert await till.state("chat-4") == "fulfilled"
    await till.sync()  # and again: nothing moves
    assert await till.units() == (ON_HAND - 1, 0)


async def test_sale_without_a_code_is_a_plain_sale_and_the_hold_stays(till: Till) -> None:
    await till.hold("chat-5")
    till.ring_up("SALE5", [line_item(ITEM, "1", note="gift wrap, PICKUP1 BETWEEN")])

    await till.sync()

    assert await till.units() == (ON_HAND - 1, 1)
    assert await till.state("chat-5") == "held"


async def test_code_of_a_hold_of_another_item_leaves_the_sale_plain(till: Till) -> None:
    code = await till.hold("chat-6", sku=till.other_sku)
    till.ring_up("SALE6", [line_item(ITEM, "1", note=code)])

    await till.sync()

    assert await till.units() == (ON_HAND - 1, 0)
    assert await till.units(till.other_sku) == (ON_HAND, 1)
    assert await till.state("chat-6") == "held"


async def test_hold_of_two_items_with_its_code_on_one_line_is_collected_whole(
    till: Till,
) -> None:
    lines = [
        {"sku": till.sku, "location_id": LOC, "qty": 1},
        {"sku": till.other_sku, "location_id": LOC, "qty": 2},
    ]
    body = {"reservation_id": "chat-7", "channel": "chat", "lines": lines}
    code = (await post_ok(till.client, "/v1/reservations", body))["hold_code"]
    till.ring_up("SALE7", [line_item(ITEM, "1", note=code), line_item(OTHER_ITEM, "2")])

    summary = await till.sync()

    assert summary.outcomes == {"applied": 1, "duplicate": 1}  # the second line's units
    assert await till.units() == (ON_HAND - 1, 0)
    assert await till.units(till.other_sku) == (ON_HAND - 2, 0)
    assert await till.state("chat-7") == "fulfilled"


async def test_one_orders_call_per_page_of_changes(till: Till) -> None:
    codes = [await till.hold(f"chat-8{i}") for i in range(3)]
    for i, code in enumerate(codes):
        till.ring_up(f"SALE8{i}", [line_item(ITEM, "1", note=code)])
    till.ring_up("WALKIN", [line_item(OTHER_ITEM, "1")])
    before = len(till.stub.requests)

    await till.sync()

    orders = [r for r in till.stub.requests[before:] if "order_ids" in r]
    assert len(orders) == 1
    assert sorted(orders[0]["order_ids"]) == sorted(
        ["SALE80-ORDER", "SALE81-ORDER", "SALE82-ORDER", "WALKIN-ORDER"]
    )
    assert await till.units() == (ON_HAND - 3, 0)


async def test_old_reference_route_needs_no_order_and_unknown_orders_are_plain_sales(
    till: Till,
) -> None:
    await till.hold("chat-9")
    await till.hold("chat-10")
    till.stub.changes += [
        adjustment(
            "REF",
            ITEM,
            SQ_LOC,
            "1",
            ago(minutes=2),
            created_at=ago(seconds=1),
            reference_id="stocksync:chat-9",
        ),
        adjustment(
            "GONE",
            ITEM,
            SQ_LOC,
            "1",
            ago(minutes=2),
            created_at=ago(seconds=1),
            transaction_id="NOT-AN-ORDER-SQUARE-KNOWS",
        ),
    ]
    before = len(till.stub.requests)

    await till.sync()

    orders = [r for r in till.stub.requests[before:] if "order_ids" in r]
    assert [r["order_ids"] for r in orders] == [["NOT-AN-ORDER-SQUARE-KNOWS"]]
    assert await till.state("chat-9") == "fulfilled"
    assert await till.state("chat-10") == "held"
    assert await till.units() == (ON_HAND - 2, 1)


async def test_without_order_lookups_no_orders_are_read(till: Till) -> None:
    code = await till.hold("chat-11")
    till.ring_up("SALE11", [line_item(ITEM, "1", note=code)])
    till.connector.config.hold_codes_from_orders = False
    before = len(till.stub.requests)

    await till.sync()

    assert not [r for r in till.stub.requests[before:] if "order_ids" in r]
    assert await till.units() == (ON_HAND - 1, 1)
    assert await till.state("chat-11") == "held"


async def test_collected_after_the_till_rang_it_up_then_counted_takes_the_unit_once(
    till: Till,
) -> None:
    """The cashier rings the sale up, Square counts it, staff press "Collected" a minute later;
    one sweep then brings the sale and the count (taken before the press)."""
    code = await till.hold("chat-12")
    till.ring_up("SALE12", [line_item(ITEM, "1", note=code)], occurred_at=ago(minutes=2))
    till.stub.counts = [inventory_count(ITEM, SQ_LOC, str(ON_HAND - 1), ago(minutes=1))]
    await till.collected("chat-12")

    summary = await till.sync()

    assert (summary.outcomes, summary.count_outcomes) == ({"duplicate": 1}, {"applied": 1})
    assert await till.units() == (ON_HAND - 1, 0)
