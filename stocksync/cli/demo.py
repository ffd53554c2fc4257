"""A small, realistic demo data set: Berlin stores, a warehouse and a few dozen SKUs."""

from __future__ import annotations

import contextlib
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from stocksync.domain.clock import datetime_to_ms
from stocksync.domain.errors import IdempotencyConflict, InvalidTransition
from stocksync.domain.model import Location, Pool, PoolLocation
from stocksync.store.redis_store import RedisStockStore

BERLIN = ZoneInfo("Europe/Berlin")
# Stock on its way, for the "arriving Thursday" story: two green sofas leave the warehouse for
# Mitte (which has none on its shelf) and arrive next Thursday at 10:00; the warehouse expects
# a purchase order of blue sofas the Monday after.
DEMO_TRANSFER = "demo-wh-to-mitte"
DEMO_SUPPLY = "demo-po-4711"

LOCATIONS = [
    Location("store-berlin-mitte", "Berlin Mitte", "store", 52.5219, 13.4132, True, True),
    Location("store-berlin-kreuzberg", "Berlin Kreuzberg", "store", 52.4986, 13.4030, True, False),
    Location(
        "store-berlin-charlottenburg",
        "Berlin Charlottenburg",
        "store",
        52.5050,
        13.3040,
        True,
        True,
    ),
    Location(
        "store-berlin-prenzlberg", "Berlin Prenzlauer Berg", "store", 52.5390, 13.4245, True, False
    ),
    Location("store-potsdam", "Potsdam", "store", 52.3989, 13.0657, True, True),
    Location("wh-berlin-sued", "Warehouse Berlin-Süd", "warehouse", 52.3700, 13.5000, False, True),
]

# Online stock for the Berlin web shop and app: the warehouse first, then the ship-enabled
# stores, each store keeping a buffer back for its own walk-in customers (never sold online).
WEB_BERLIN = Pool(
    "web-berlin",
    "Berlin web shop",
    ("web", "app"),
    "priority",
    (
        PoolLocation("wh-berlin-sued", 1, 0),
        PoolLocation("store-berlin-mitte", 2, 1),
        PoolLocation("store-berlin-charlottenburg", 2, 1),
        PoolLocation("store-potsdam", 3, 2),
    ),
)

PRODUCTS = {
    "SOFA-VELVET-GREEN": "3-seat velvet sofa, green",
    "SOFA-VELVET-BLUE": "3-seat velvet sofa, blue",
    "SOFA-LINEN-GREY": "2-seat linen sofa, grey",
    "ARMCHAIR-BOUCLE": "Bouclé armchair",
    "CHAIR-OAK": "Oak dining chair",
    "CHAIR-WALNUT": "Walnut dining chair",
    "TABLE-OAK-180": "Oak dining table 180 cm",
    "TABLE-OAK-220": "Oak dining table 220 cm",
    "COFFEETABLE-MARBLE": "Marble coffee table",
    "SIDEBOARD-ASH": "Ash sideboard",
    "BED-QUEEN-OAK": "Queen bed frame, oak",
    "BED-KING-OAK": "King bed frame, oak",
    "MATTRESS-QUEEN": "Queen mattress, medium",
    "MATTRESS-KING": "King mattress, medium",
    "LAMP-FLOOR-BRASS": "Brass floor lamp",
    "LAMP-TABLE-OPAL": "Opal glass table lamp",
    "PENDANT-RATTAN": "Rattan pendant light",
    "RUG-WOOL-200": "Wool rug 200 x 300",
    "RUG-JUTE-160": "Jute rug 160 x 230",
    "MIRROR-ROUND-80": "Round mirror 80 cm",
    "SHELF-WALL-OAK": "Oak wall shelf",
    "BOOKCASE-TALL": "Tall bookcase",
    "DESK-STANDING": "Standing desk",
    "OFFICECHAIR-MESH": "Mesh office chair",
    "CUSHION-VELVET-GREEN": "Velvet cushion, green",
    "CUSHION-LINEN-SAND": "Linen cushion, sand",
    "THROW-WOOL-OCHRE": "Wool throw, ochre",
    "VASE-CERAMIC-TALL": "Tall ceramic vase",
    "PLANTER-TERRACOTTA": "Terracotta planter",
    "CURTAIN-LINEN-WHITE": "Linen curtain, white",
    "STOOL-BAR-STEEL": "Steel bar stool",
    "BENCH-OAK-140": "Oak bench 140 cm",
}


async def load_demo(store: RedisStockStore) -> int:
    """Create the demo locations, counts, the ``web-berlin`` pool and the stock on its way
    (a transfer to Mitte, a purchase order at the warehouse); returns the number of positions.

    Counts carry a fixed source_event_id, so loading again keeps the stock as it is now.
    """
    rng = random.Random(20261126)
    for location in LOCATIONS:
        await store.upsert_location(location)
    positions = 0
    for sku in PRODUCTS:
        for location in LOCATIONS:
            big = location.kind == "warehouse"
            on_hand = rng.randint(5, 60) if big else rng.choice([0, 1, 1, 2, 3, 4, 6, 8])
            if sku == "SOFA-VELVET-GREEN" and location.location_id == "store-berlin-kreuzberg":
                on_hand = 1  # the last green sofa in Kreuzberg: the chat-hold story
            if sku == "SOFA-VELVET-GREEN" and location.location_id == "store-berlin-mitte":
                on_hand = 0  # none on the shelf: two are on their way (the transfer below)
            await store.set_count(
                sku,
                location.location_id,
                on_hand,
                safety_stock=2 if big else 0,
                source="demo",
                source_event_id=f"demo-{location.location_id}-{sku}",
            )
            positions += 1
    await store.upsert_pool(WEB_BERLIN)
    await load_stock_on_its_way(store, datetime.now(BERLIN))
    return positions


def next_weekday_at(now: datetime, weekday: int, hour: int) -> datetime:
    """The next ``weekday`` (Monday 0) at ``hour`` o'clock strictly after today, in now's zone."""
    days = (weekday - now.weekday() - 1) % 7 + 1
    return (now + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


async def load_stock_on_its_way(store: RedisStockStore, now: datetime) -> None:
    """The demo's transfer and purchase order, dated from ``now``. Loading again keeps the
    transfer already shipped (received, cancelled or still on its way) as it is."""
    thursday = next_weekday_at(now, 3, 10)
    # Shipped by an earlier load (another day: another expected time): kept as it is.
    with contextlib.suppress(IdempotencyConflict, InvalidTransition):
        await store.ship_transfer(
            DEMO_TRANSFER,
            "wh-berlin-sued",
            "store-berlin-mitte",
            [("SOFA-VELVET-GREEN", 2)],
            expected_at_ms=datetime_to_ms(thursday),
        )
    monday = next_weekday_at(thursday, 0, 8)
    await store.set_incoming(
        "SOFA-VELVET-BLUE", "wh-berlin-sued", DEMO_SUPPLY, 12, datetime_to_ms(monday)
    )
