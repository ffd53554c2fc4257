"""What a rebuild takes of the stock beyond the shelf from a SKU's ledger rows (no I/O: the
rows are built from contract-format entries the way the ledger builds them)."""

from __future__ import annotations

from stocksync.ledger.movements import movement_row
from stocksync.ledger.tables import Movement
from stocksync.recovery import shelf_payload as shelf
from stocksync.store.outbox import decode_event
from tests.support.shelf_ledger import ShelfStory


def rows(story: ShelfStory, loc: str | None = None) -> list[shelf.Row]:
    movements = [Movement(**movement_row(decode_event("u", sid, f))) for sid, f in story.entries]
    return shelf.decoded(m for m in movements if loc is None or m.location_id == loc)


def test_buckets_are_the_newest_stated_values_and_start_over_after_a_domain_move() -> None:
    story = ShelfStory("S")
    story.bucket("stock_moved", "a", 2, {"on_hand": -2, "damaged": 2})
    story.bucket("returned", "a", 1, {"quality_control": 1}, ret="r")
    assert shelf.buckets(rows(story)) == [2, 1, 0]
    story.count("a", 9)  # states no bucket: the newest that does stands
    assert shelf.buckets(rows(story)) == [2, 1, 0]
    story.event("position_moved_out", "a", {"d_on_hand": -9, "on_hand": 0, "reserved": 0})
    assert shelf.buckets(rows(story)) == [0, 0, 0]


def test_arrivals_follow_each_supply_to_its_newest_state() -> None:
    story = ShelfStory("S")
    story.supply("incoming_set", "a", 5, supply="p1", exp="100", prev="0")
    story.supply("incoming_set", "a", 7, supply="p1", exp="200", prev="5")  # replaced
    story.supply("incoming_set", "a", 3, supply="p2", exp="300", prev="0")
    story.supply("incoming_consumed", "a", 3, supply="p2", left="0", by="adjust")  # all of it
    story.supply("incoming_set", "a", 4, supply="p3", exp="", prev="0")
    story.supply("incoming_consumed", "a", 1, supply="p3", left="3", by="transfer")
    # Consumed, its setting older than the ledger: the rest is known, its time is not.
    story.supply("incoming_consumed", "a", 1, supply="p4", left="2", by="adjust")
    story.supply("incoming_set", "a", 1, supply="p5", exp="500", prev="0")
    story.supply("incoming_removed", "a", 1, supply="p5")
    assert shelf.arrivals(rows(story)) == ["s:p1", "7|200", "s:p3", "3|", "s:p4", "2|"]


def test_a_transfer_arrives_at_its_target_until_received_or_cancelled() -> None:
    story = ShelfStory("S")
    for xfer in ("t1", "t2", "t3"):
        details = {"xfer": xfer, "from": "wh", "to": "a", "exp": "900"}
        story.bucket("transfer_shipped", "wh", 2, {"on_hand": -2}, **details)
        story.bucket("transfer_shipped", "a", 2, {"in_transit": 2}, **details)
    story.bucket("transfer_received", "a", 1, {"in_transit": -2, "on_hand": 1}, xfer="t1")
    story.bucket("transfer_cancelled", "a", 2, {"in_transit": -2}, xfer="t2")
    assert shelf.arrivals(rows(story, "a")) == ["t:t3", "2|900"]
    assert shelf.arrivals(rows(story, "wh")) == []  # the source expects nothing


def test_transfer_lines_state_each_transfer_and_leave_out_expired_or_unknown_ones() -> None:
    story = ShelfStory("S")
    for xfer in ("old", "open", "done", "gone"):
        details = {"xfer": xfer, "from": "wh", "to": "a", "exp": ""}
        story.bucket("transfer_shipped", "wh", 3, {"on_hand": -3}, **details)
        story.bucket("transfer_shipped", "a", 3, {"in_transit": 3}, **details)
    story.bucket("transfer_received", "a", 2, {"in_transit": -3, "on_hand": 2}, xfer="old")
    since = story.at_ms + 1  # "old" ended before it
    story.bucket(
        "transfer_received", "a", 1, {"in_transit": -3, "on_hand": 1}, xfer="done", shipped="3"
    )
    story.bucket("transfer_shortfall", "a", 2, {}, xfer="done")
    story.bucket("transfer_cancelled", "a", 3, {"in_transit": -3}, xfer="gone")
    story.bucket("transfer_cancelled", "wh", 3, {"on_hand": 3}, xfer="gone")
    # A receipt whose shipment the ledger does not hold: no record can be made of it.
    story.bucket("transfer_received", "a", 1, {"in_transit": -1, "on_hand": 1}, xfer="lost")
    found = {t["id"]: t for t in shelf.transfer_lines(rows(story), since)}
    assert sorted(found) == ["done", "gone", "open"]
    assert [(t["state"], t["shipped"], t["received"]) for t in found.values()] == [
        ("shipped", 3, 0),
        ("received", 3, 1),
        ("cancelled", 3, 0),
    ]
    assert (found["open"]["from"], found["open"]["to"]) == ("wh", "a")
    assert found["done"]["updated_at"] > found["done"]["created_at"]


def test_returns_and_returned_units_within_the_retention() -> None:
    story = ShelfStory("S")
    story.bucket("returned", "a", 1, {"on_hand": 1}, ret="r-old", res="res-1", disp="restock")
    story.bucket("returned", "a", 1, {"on_hand": 1}, ret="r-gone", res="res-2", disp="restock")
    since = story.at_ms + 1
    story.bucket("returned", "a", 2, {"damaged": 2}, ret="r-new", res="res-1", disp="damaged")
    story.bucket("returned", "b", 1, {"quality_control": 1}, ret="r-new", res="res-1", disp="x")
    story.bucket("returned", "b", 1, {"on_hand": 1}, ret="r-till", disp="restock")
    found = {r["id"]: r for r in shelf.return_lines(rows(story), since)}
    assert sorted(found) == ["r-new", "r-till"]
    assert found["r-new"]["lines"] == [["S", "a", 2, "damaged"], ["S", "b", 1, "x"]]
    assert (found["r-new"]["res"], found["r-till"]["res"]) == ("res-1", "")
    # res-1's units count its older return too: a further return is checked against all.
    assert shelf.returned_units(rows(story), since) == [
        {"res": "res-1", "units": 4, "ids": ["r-old", "r-new"]}
    ]
