"""The demo's stock on its way: a transfer to Mitte arriving next Thursday at 10:00 (Berlin)
and a purchase order at the warehouse; loading again keeps them."""

from __future__ import annotations

from datetime import datetime

import pytest

from stocksync.cli.demo import BERLIN, DEMO_SUPPLY, DEMO_TRANSFER, load_demo, next_weekday_at
from stocksync.domain.clock import ms_to_datetime
from stocksync.domain.model import ArrivalKind, TransferState
from stocksync.store.redis_store import RedisStockStore


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 28, 17, 0, tzinfo=BERLIN), datetime(2026, 12, 3, 10, 0)),  # Sat
        (datetime(2026, 12, 3, 9, 0, tzinfo=BERLIN), datetime(2026, 12, 10, 10, 0)),  # Thu
        (datetime(2026, 12, 2, 23, 59, tzinfo=BERLIN), datetime(2026, 12, 3, 10, 0)),  # Wed
    ],
)
def test_next_thursday_is_after_today(now: datetime, expected: datetime) -> None:
    assert next_weekday_at(now, 3, 10) == expected.replace(tzinfo=BERLIN)


async def test_the_demo_ships_two_sofas_to_mitte_and_expects_a_purchase_order(
    store: RedisStockStore,
) -> None:
    await load_demo(store)
    mitte = await store.position("SOFA-VELVET-GREEN", "store-berlin-mitte")
    assert (mitte.on_hand, mitte.in_transit) == (0, 2)
    (arrival,) = mitte.arrivals
    assert (arrival.kind, arrival.id, arrival.qty) == (ArrivalKind.TRANSFER, DEMO_TRANSFER, 2)
    assert arrival.expected_at_ms is not None
    when = ms_to_datetime(arrival.expected_at_ms).astimezone(BERLIN)
    assert (when.weekday(), when.hour, when.minute) == (3, 10, 0)
    warehouse = await store.position("SOFA-VELVET-BLUE", "wh-berlin-sued")
    assert [(a.id, a.qty) for a in warehouse.arrivals] == [(DEMO_SUPPLY, 12)]

    await load_demo(store)  # again: the same transfer, nothing shipped twice
    assert await store.position("SOFA-VELVET-GREEN", "store-berlin-mitte") == mitte
    transfer = await store.get_transfer(DEMO_TRANSFER)
    assert transfer.state is TransferState.SHIPPED
    assert [(ln.sku, ln.shipped) for ln in transfer.lines] == [("SOFA-VELVET-GREEN", 2)]
