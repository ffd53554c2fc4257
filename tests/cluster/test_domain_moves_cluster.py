"""Moving a stock domain's slot to another primary with ``move_domain``, on a real cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import RedisCluster

from stocksync.config import Settings
from stocksync.domain.errors import DomainMoving
from stocksync.domain.model import Line, Location
from stocksync.store.connection import open_store
from stocksync.store.domain_moves import (
    MoveRefused,
    domain_slot,
    freeze,
    move_domain,
    move_location,
    unfreeze,
)
from stocksync.store.domain_status import domain_statuses
from tests.support.cluster import ValkeyCluster

DOMAIN = "north"


async def test_a_domain_moves_to_another_primary_with_all_its_stock(
    cluster: ValkeyCluster,
) -> None:
    settings = Settings(redis_url=cluster.seed_url, redis_cluster=True, namespace="t")
    assert settings.redis_url is not None
    async with open_store(settings, settings.redis_url, pool_size=8) as store:
        client: Any = store.client
        assert isinstance(client, RedisCluster)
        await store.upsert_location(Location("store-n", "N", "store", 53.5, 10.0, domain=DOMAIN))
        for i in range(250):  # more keys than one MIGRATE batch
            await store.set_count(f"SKU-{i}", "store-n", 10 + i)
        await store.reserve("r1", "web", [Line("SKU-1", "store-n", 2)], 600)
        slot = domain_slot(store, DOMAIN)
        source = cluster.primary_for_slot(slot)
        target = next(n for n in cluster.primary_nodes() if n.port != source.port)
        keys_before = source.command("CLUSTER", "COUNTKEYSINSLOT", slot)

        # Frozen: refused, on whichever node serves the slot.
        await freeze(store, DOMAIN)
        with pytest.raises(DomainMoving):
            await store.reserve("r2", "web", [Line("SKU-2", "store-n", 1)], 600)
        await unfreeze(store, DOMAIN)

        moved = await move_domain(client, store, DOMAIN, target.name, batch=40)

        assert (moved.source, moved.target) == (source.name, target.name)
        assert moved.keys == keys_before + 1  # and the meta key the freeze made, last
        assert cluster.primary_for_slot(slot).port == target.port
        assert source.command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        # unfrozen: the meta hash is empty again, so it is gone
        assert target.command("CLUSTER", "COUNTKEYSINSLOT", slot) == keys_before
        for i in (0, 1, 249):
            position = await store.position(f"SKU-{i}", "store-n")
            assert position.on_hand == 10 + i
        assert (await store.position("SKU-1", "store-n")).reserved == 2
        assert (await store.reserve("r2", "web", [Line("SKU-2", "store-n", 1)], 600)).created
        await store.confirm("r1")
        (status,) = [d for d in await domain_statuses(store) if d.domain == DOMAIN]
        assert status.node == target.name
        assert not status.frozen
        assert status.replicas  # each primary of the harness has a replica

        with pytest.raises(MoveRefused, match="not a primary"):
            await move_domain(client, store, DOMAIN, "127.0.0.1:1")


async def test_a_location_moves_between_domains_on_two_primaries(cluster: ValkeyCluster) -> None:
    settings = Settings(redis_url=cluster.seed_url, redis_cluster=True, namespace="t")
    assert settings.redis_url is not None
    async with open_store(settings, settings.redis_url, pool_size=8) as store:
        await store.upsert_location(Location("store-a", "A", "store", 52.5, 13.4))
        await store.upsert_location(Location("store-n", "N", "store", 53.5, 10.0, domain=DOMAIN))
        await asyncio.gather(*(store.set_count(f"SKU-{i}", "store-a", i + 1) for i in range(30)))

        moved = await move_location(store, "store-a", DOMAIN)

        assert moved.positions == 30
        assert (await store.position("SKU-29", "store-a")).on_hand == 30
        assert await store.domain_of_location("store-a") == DOMAIN
        assert (await store.reserve("r1", "web", [Line("SKU-3", "store-a", 4)], 600)).created
