"""The position history through HTTP shows the stock beyond the shelf: the bucket deltas, the
buckets after a bucket event and what bucket and supply events name (not internal details)."""

from __future__ import annotations

import httpx

from stocksync.api.deps import Services
from stocksync.domain.model import Location
from tests.support.shelf_ledger import ShelfStory, record


async def history(client: httpx.AsyncClient, sku: str, loc: str = "store-a") -> list[dict]:
    r = await client.get(f"/v1/stock/{loc}/{sku}/history")
    assert r.status_code == 200, r.text
    movements: list[dict] = r.json()["movements"]
    return movements


async def test_history_shows_bucket_deltas_values_and_named_details(
    client: httpx.AsyncClient, services: Services, sku: str
) -> None:
    story = ShelfStory(sku)
    story.count("store-a", 10)
    story.bucket(
        "stock_moved",
        "store-a",
        2,
        {"on_hand": -2, "damaged": 2},
        **{"from": "on_hand", "to": "damaged", "reason": "broken", "fp": "f00"},
    )
    story.bucket("returned", "store-a", 1, {"quality_control": 1}, ret="ret-9", disp="inspect")
    story.bucket(
        "transfer_shipped",
        "store-a",
        3,
        {"in_transit": 3},
        **{"xfer": "t-4", "from": "wh-1", "to": "store-a", "exp": "1790000900000"},
    )
    story.supply("incoming_set", "store-a", 6, supply="po-7", exp="1790000800000", prev="0")
    record(services.ledger, services.settings.namespace, story)

    supply, shipped, returned, moved, counted = await history(client, sku)

    assert [m["kind"] for m in (supply, shipped, returned, moved, counted)] == [
        "incoming_set",
        "transfer_shipped",
        "returned",
        "stock_moved",
        "counted",
    ]
    buckets = ("damaged", "quality_control", "in_transit")
    assert [[m[f"d_{b}"] for b in buckets] for m in (shipped, returned, moved)] == [
        [0, 0, 3],
        [0, 1, 0],
        [2, 0, 0],
    ]
    assert [[m[b] for b in buckets] for m in (shipped, returned, moved)] == [
        [2, 1, 3],
        [2, 1, 0],
        [2, 0, 0],
    ]
    assert (moved["d_on_hand"], moved["on_hand"], moved["qty"]) == (-2, 8, 2)
    assert moved["details"] == {"from": "on_hand", "to": "damaged"}  # not the fingerprint
    assert returned["details"] == {"ret": "ret-9", "disp": "inspect"}
    assert shipped["details"] == {
        "xfer": "t-4",
        "from": "wh-1",
        "to": "store-a",
        "exp": "1790000900000",
    }
    assert supply["details"] == {"supply": "po-7", "exp": "1790000800000", "prev": "0"}
    # Events that state no bucket: zeros for the deltas, null for the values after them.
    assert [supply[b] for b in buckets] == [counted[b] for b in buckets] == [None] * 3
    assert [counted[f"d_{b}"] for b in buckets] == [0, 0, 0]
    assert counted["details"] == {}


async def test_history_of_a_location_in_another_stock_domain_reads_its_ledger_namespace(
    client: httpx.AsyncClient, services: Services, sku: str
) -> None:
    store = services.store
    await store.upsert_location(
        Location("store-n", "Store N", "store", 53.5, 10.0, True, True, domain="north")
    )
    namespace = store.keys_of("north").ledger_namespace
    assert namespace != services.settings.namespace
    story = ShelfStory(sku)
    story.count("store-n", 4)
    story.bucket("stock_moved", "store-n", 1, {"on_hand": -1, "quality_control": 1})
    record(services.ledger, namespace, story)
    found = await history(client, sku, "store-n")
    assert [(m["seq"], m["kind"], m["quality_control"]) for m in found] == [
        (2, "stock_moved", 1),
        (1, "counted", None),
    ]
