"""The sweeper keeps the directory's reservation claims bounded."""

from __future__ import annotations

from stocksync.domain.model import Line
from stocksync.recovery.claims import sweep_claims
from stocksync.store.redis_store import RedisStockStore
from tests.support.domains import DEFAULT_STORE, EU, EU_STORE, two_domains

TTL = 600


async def claims(store: RedisStockStore) -> dict[str, str]:
    raw = await store.client.hgetall(store.directory.reservation_domains)
    return {str(k): str(v) for k, v in raw.items()}


async def age(store: RedisStockStore, reservation_id: str) -> None:
    """Backdate a claim (claimed at the epoch)."""
    key = store.directory.reservation_domains
    domain = str(await store.client.hget(key, reservation_id)).partition("|")[0]
    await store.client.hset(key, reservation_id, f"{domain}|0")


async def test_sweeper_drops_old_claims_of_reservations_gone_and_keeps_the_rest(
    store: RedisStockStore, sku: str
) -> None:
    await two_domains(store, sku, 0)
    await store.reserve("eu-gone", "web", [Line(sku, EU_STORE, 1)], TTL)
    await store.release("eu-gone")
    await store.reserve("a-live", "web", [Line(sku, DEFAULT_STORE, 1)], TTL)
    await store.reserve("eu-young", "web", [Line(sku, EU_STORE, 1)], TTL)
    await store.client.delete(store.keys_of("eu").reservation("eu-young"))  # gone, but young
    for reservation_id in ("eu-gone", "a-live"):
        await age(store, reservation_id)
    # Pruned after the retention period (terminal reservations expire): gone from its domain.
    await store.client.delete(store.keys_of(EU).reservation("eu-gone"))
    refused = {f"refused-{i}": "default|0" for i in range(1200)}  # claims with no reservation
    await store.client.hset(store.directory.reservation_domains, mapping=refused)

    dropped = await sweep_claims(store, page=100)

    assert dropped == 1 + len(refused)
    left = await claims(store)
    assert sorted(left) == ["a-live", "eu-young"]
    assert (await store.get_reservation("a-live")).state.value == "held"
    assert await sweep_claims(store, page=100) == 0
