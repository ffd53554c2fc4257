"""The cluster transport on a real 3-primary, 3-replica Valkey Cluster: the library on every
primary, calls routed by slot, slot migrations (ASK, MOVED), replica waits, and a failover."""

from __future__ import annotations

import asyncio
import threading

import pytest
from redis.crc import key_slot

from stocksync.domain.errors import ReplicationTimeout
from stocksync.store.scripts import LIBRARY_PREFIX, library
from tests.cluster.conftest import OpenTransport
from tests.support import kv_library
from tests.support.cluster import ClusterNodeProcess, ValkeyCluster, wait_until

RETENTION, OUTBOX_MAXLEN = 3600, 0


def meta_key(domain: str) -> str:
    return f"ss:{{t:{domain}}}:meta"


def domains_per_primary(cluster: ValkeyCluster) -> dict[int, str]:
    """One domain whose meta key's slot each primary owns (primary port -> domain)."""
    owners = cluster.slot_map()
    found: dict[int, str] = {}
    for n in range(10_000):
        domain = f"d{n}"
        found.setdefault(owners[key_slot(meta_key(domain).encode())][0], domain)
        if len(found) == len(cluster.primary_nodes()):
            return found
    raise AssertionError("no domain for some primary")


def read_from_replica(replica: ClusterNodeProcess, key: str) -> str | None:
    """GET on the replica itself (READONLY on the same connection)."""
    with replica.client().pipeline(transaction=False) as pipe:
        pipe.execute_command("READONLY")
        pipe.get(key)
        _, value = pipe.execute()
    return value if value is None else str(value)


async def test_the_library_is_loaded_on_and_deleted_from_every_primary(
    cluster: ValkeyCluster, open_transport: OpenTransport
) -> None:
    built = library()
    async with open_transport() as transport:
        await transport.load_library(built.source)
        for node in cluster.primary_nodes():
            listed = node.command("FUNCTION", "LIST", "LIBRARYNAME", built.name)
            assert len(listed) == 1, node.name
        assert await transport.libraries(LIBRARY_PREFIX) == [built.name]
        await transport.delete_library(built.name)
        assert await transport.libraries(LIBRARY_PREFIX) == []
        for node in cluster.primary_nodes():
            assert node.command("FUNCTION", "LIST", "LIBRARYNAME", built.name) == []


async def test_calls_run_on_the_primary_that_owns_their_domain(
    cluster: ValkeyCluster, open_transport: OpenTransport
) -> None:
    built = library()
    domains = domains_per_primary(cluster)
    assert len(domains) == 3
    async with open_transport(replica_wait="auto") as transport:
        await transport.load_library(built.source)
        for port, domain in domains.items():
            key = meta_key(domain)
            upsert = [RETENTION, OUTBOX_MAXLEN, f"store-{domain}", "Store", "store"]
            reply = await transport.fcall(
                built.function("upsert_location"),
                key,
                [*upsert, "52.5", "13.4", 1, 1, "test"],
                durable=True,
            )
            assert reply == ["ok", 1]
            rows = await transport.fcall(
                built.function("read_positions"),
                key,
                [RETENTION, OUTBOX_MAXLEN, "SKU-1", f"store-{domain}", "test"],
            )
            assert rows[:4] == [f"store-{domain}", 0, 0, 0] or rows[:4] == [
                f"store-{domain}",
                "0",
                "0",
                "0",
            ]
            slot = key_slot(key.encode())
            for node in cluster.primary_nodes():
                keys_here = int(node.command("CLUSTER", "COUNTKEYSINSLOT", slot))
                assert (keys_here > 0) == (node.port == port), (node.name, domain)


async def test_a_slot_migration_is_followed_through_ask_and_moved(
    cluster: ValkeyCluster, open_transport: OpenTransport
) -> None:
    keys = [f"{{mig}}:k{i}" for i in range(20)]
    slot = key_slot(keys[0].encode())
    source = cluster.primary_for_slot(slot)
    target = next(node for node in cluster.primary_nodes() if node.port != source.port)
    asking_before = int(target.info("commandstats").get("cmdstat_asking", {}).get("calls", 0))
    async with open_transport() as transport:
        await transport.load_library(kv_library.SOURCE)
        for key in keys:
            assert await transport.fcall(kv_library.INCR, key, []) == 1
        # Half the keys moved: those answer ASK from the source, the others are still there.
        assert cluster.begin_slot_migration(slot, target).port == source.port
        assert cluster.move_slot_keys(slot, source, target, batch=10) == 10
        for key in keys:
            assert await transport.fcall(kv_library.INCR, key, []) == 2
        asking_after = int(target.info("commandstats")["cmdstat_asking"]["calls"])
        assert asking_after - asking_before >= 10  # one ASKING per moved key
        while cluster.move_slot_keys(slot, source, target, batch=10):
            pass
        cluster.finish_slot_migration(slot, target)
        # The transport's slot map still names the source: MOVED sends it to the target.
        assert transport.primary(slot).port == source.port
        for key in keys:
            assert await transport.fcall(kv_library.INCR, key, []) == 3
        assert transport.primary(slot).port == target.port
        for key in keys:
            assert target.command("GET", key) == "3"


async def test_calls_racing_a_slot_migration_are_each_applied_once(
    cluster: ValkeyCluster, open_transport: OpenTransport
) -> None:
    keys = [f"{{race}}:k{i}" for i in range(40)]
    slot = key_slot(keys[0].encode())
    source = cluster.primary_for_slot(slot)
    target = next(node for node in cluster.primary_nodes() if node.port != source.port)
    acknowledged = dict.fromkeys(keys, 0)
    done = threading.Event()

    async with open_transport() as transport:
        await transport.load_library(kv_library.SOURCE)

        async def caller(offset: int) -> None:
            i = offset
            while not done.is_set():
                key = keys[i % len(keys)]
                await transport.fcall(kv_library.INCR, key, [])
                acknowledged[key] += 1
                i += 1

        for key in keys:  # every key exists before the migration starts
            await transport.fcall(kv_library.INCR, key, [])
            acknowledged[key] += 1

        def calls_progressed() -> None:  # the next batch moves only after 8 more calls
            goal = sum(acknowledged.values()) + 8
            wait_until("calls progress", lambda: sum(acknowledged.values()) >= goal)

        def migrate() -> int:
            try:
                return cluster.migrate_slot(slot, target, 4, calls_progressed)
            finally:
                done.set()

        callers = [asyncio.create_task(caller(n * 7)) for n in range(4)]
        moved = await asyncio.to_thread(migrate)
        await asyncio.gather(*callers)
        assert moved == len(keys)
        for key in keys:
            assert await transport.fcall(kv_library.GET, key, []) == str(acknowledged[key])
        # Calls ran while the slot was half-moved (8 after each of the 10 batches).
        assert sum(acknowledged.values()) >= len(keys) + 8 * len(keys) // 4


async def test_a_durable_call_returns_once_a_replica_has_the_write(
    cluster: ValkeyCluster, open_transport: OpenTransport
) -> None:
    key = "{durable}:counter"
    primary = cluster.primary_for_slot(key_slot(key.encode()))
    (replica,) = cluster.replicas_of(primary)
    async with open_transport(replica_wait="wait") as transport:
        await transport.load_library(kv_library.SOURCE)
        for expected in range(1, 31):
            assert await transport.fcall(kv_library.INCR, key, [], durable=True) == expected
            assert read_from_replica(replica, key) == str(expected)  # no polling: WAIT did it


async def test_waitaof_returns_once_a_replica_fsynced_the_write(
    cluster: ValkeyCluster, open_transport: OpenTransport
) -> None:
    key = "{aof}:counter"
    primary = cluster.primary_for_slot(key_slot(key.encode()))
    (replica,) = cluster.replicas_of(primary)
    # A replica reports its fsynced offset with its once-a-second ACK: WAITAOF takes ~1 s.
    async with open_transport(replica_wait="waitaof", replica_wait_timeout_ms=3000) as transport:
        await transport.load_library(kv_library.SOURCE)
        for expected in range(1, 4):
            assert await transport.fcall(kv_library.INCR, key, [], durable=True) == expected
            assert read_from_replica(replica, key) == str(expected)


@pytest.mark.parametrize("mode", ["auto", "wait", "waitaof"])
async def test_a_durable_call_without_its_replica_raises_replication_timeout(
    cluster: ValkeyCluster, open_transport: OpenTransport, mode: str
) -> None:
    key = "{lonely}:counter"
    primary = cluster.primary_for_slot(key_slot(key.encode()))
    (replica,) = cluster.replicas_of(primary)
    timeout_ms = 2500 if mode == "waitaof" else 300  # WAITAOF answers within ~1 s at best
    async with open_transport(replica_wait=mode, replica_wait_timeout_ms=timeout_ms) as transport:
        await transport.load_library(kv_library.SOURCE)
        assert await transport.fcall(kv_library.INCR, key, [], durable=True) == 1
        with cluster.paused(replica):
            with pytest.raises(ReplicationTimeout) as raised:
                await transport.fcall(kv_library.INCR, key, [], durable=True)
            # Applied on the primary all the same (the error says so; a retry is safe).
            assert primary.command("GET", key) == "2"
            assert raised.value.status == 503
            assert "applied on the primary" in raised.value.detail
            # A call that changes nothing does not wait.
            assert await transport.fcall(kv_library.GET, key, []) == "2"
    cluster.wait_healthy()


async def test_after_a_primary_is_killed_calls_succeed_on_its_promoted_replica(
    cluster: ValkeyCluster, open_transport: OpenTransport
) -> None:
    key = "{failover}:counter"
    slot = key_slot(key.encode())
    victim = cluster.primary_for_slot(slot)
    async with open_transport(replica_wait="auto", redis_cluster_retry_seconds=30) as transport:
        await transport.load_library(kv_library.SOURCE)
        for expected in range(1, 21):  # acknowledged after a replica had each (auto = wait)
            assert await transport.fcall(kv_library.INCR, key, [], durable=True) == expected
        cluster.kill(victim)
        try:
            # Retried (topology refreshed, backing off) until the replica is promoted; every
            # acknowledged increment survived the failover.
            assert await transport.fcall(kv_library.INCR, key, [], durable=True) == 21
            promoted = await asyncio.to_thread(cluster.wait_for_failover, victim)
            assert transport.primary(slot).port == promoted.port
            # The promoted replica had the library already (FUNCTION LOAD is replicated).
            assert await transport.fcall(kv_library.GET, key, []) == "21"
        finally:
            await asyncio.to_thread(cluster.restart, victim)  # back as a replica
    assert cluster.primary_for_slot(slot).port != victim.port
