"""Routing to stock domains when the directory lacks a reservation's claim: the hold and its
claim go out together, so a crash between them can leave a hold the directory does not know."""

from __future__ import annotations

from stocksync.domain.model import Line, Location, State
from stocksync.store.redis_store import RedisStockStore


async def test_a_hold_whose_claim_was_lost_is_found_and_claimed_again(
    store: RedisStockStore, sku: str
) -> None:
    await store.upsert_location(Location("oslo-1", "Oslo", "store", domain="nordics"))
    await store.set_count(sku, "oslo-1", 4)
    await store.reserve("lost-claim", "web", [Line(sku, "oslo-1", 3)], 600)
    directory = store.directory.reservation_domains
    await store.client.hdel(directory, "lost-claim")  # type: ignore[misc]

    other = RedisStockStore(store.client, store.settings)  # a process that never saw it
    found = await other.get_reservation("lost-claim")

    assert (found.state, found.lines) == (State.HELD, [Line(sku, "oslo-1", 3)])
    claim = await store.client.hget(directory, "lost-claim")  # type: ignore[misc]
    assert str(claim).startswith("nordics|")
    assert (await other.release("lost-claim")).reservation.state == State.RELEASED
    assert (await other.position(sku, "oslo-1")).reserved == 0


async def test_an_id_no_domain_has_stays_unknown_and_unclaimed(store: RedisStockStore) -> None:
    await store.upsert_location(Location("oslo-1", "Oslo", "store", domain="nordics"))
    assert await store.domain_of_reservation("never-made") is None
    assert await store.client.hget(store.directory.reservation_domains, "never-made") is None  # type: ignore[misc]
