"""The replica wait on a standalone server (``replica_wait=wait``): a durable call returns once
the server's replica has the write, and raises ReplicationTimeout when no replica confirms."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from stocksync.domain.errors import ReplicationTimeout
from stocksync.store.connection import open_redis
from stocksync.store.embedded import EmbeddedRedis
from stocksync.store.replica_wait import ReplicaWait
from stocksync.store.transport import StandaloneTransport
from tests.support import kv_library
from tests.support.ports import free_port

WAIT_LIMIT_SECONDS = 30.0


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, EmbeddedRedis]]:
    primary = EmbeddedRedis(tmp_path / "primary", port=free_port())
    # No AOF on the replica: one that is still writing its first AOF after the sync refuses
    # SIGTERM ("Writing initial AOF, can't exit"). WAIT counts it all the same.
    replica = EmbeddedRedis(tmp_path / "replica", port=free_port(), appendonly=False)
    for server in (primary, replica):
        server.data_dir.mkdir()
        server.start()
    try:
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


@pytest.fixture
async def primary_client(
    primary_and_replica: tuple[EmbeddedRedis, EmbeddedRedis],
) -> AsyncIterator[Redis]:
    primary, replica = primary_and_replica
    client = await open_redis(primary.url, 4, 5.0)
    replica_client = await open_redis(replica.url, 1, 5.0)
    try:
        await client.config_set("repl-diskless-sync-delay", 0)  # sync now, not in 5 s
        await replica_client.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        while (await replica_client.info("replication")).get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            await replica_client.ping()  # a round trip between polls, no fixed sleep
        await client.function_load(kv_library.SOURCE, replace=True)
        yield client
    finally:
        # Detached first: a primary stopping with a replica waits for it (shutdown-timeout).
        await replica_client.execute_command("REPLICAOF", "NO", "ONE")
        await replica_client.aclose()
        await client.aclose()


async def test_a_durable_call_returns_once_the_replica_has_the_write(
    primary_and_replica: tuple[EmbeddedRedis, EmbeddedRedis], primary_client: Redis
) -> None:
    _, replica = primary_and_replica
    transport = StandaloneTransport(primary_client, ReplicaWait("wait", 5000))
    replica_client = await open_redis(replica.url, 1, 5.0)
    try:
        for expected in range(1, 21):
            assert await transport.fcall(kv_library.INCR, "n", [], durable=True) == expected
            assert await replica_client.get("n") == str(expected)  # no polling: WAIT did it
    finally:
        await replica_client.aclose()


async def test_a_durable_call_without_a_replica_raises_replication_timeout(
    redis_client: Redis,
) -> None:
    await redis_client.function_load(kv_library.SOURCE, replace=True)
    key = "replica-wait-" + str(free_port())
    transport = StandaloneTransport(redis_client, ReplicaWait("wait", 50))
    with pytest.raises(ReplicationTimeout) as raised:
        await transport.fcall(kv_library.INCR, key, [], durable=True)
    assert raised.value.code == "replication_timeout"
    assert await redis_client.get(key) == "1"  # applied on the primary all the same
    # Reads and the default policy (auto: off on a standalone server) never wait.
    assert await transport.fcall(kv_library.GET, key, []) == "1"
    assert (
        await StandaloneTransport(redis_client).fcall(kv_library.INCR, key, [], durable=True) == 2
    )
    await redis_client.delete(key)
