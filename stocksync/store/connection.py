"""Opening Redis and the store on it, the same way in every process.

The API, ``stocksync worker``, ``rebuild``, ``audit``, ``demo`` and ``connector run`` all get
their Redis URL from :func:`redis_url` (the configured server, or the bundled one started in
the data dir) and their store from :func:`open_store` (a warmed blocking pool and a
:class:`RedisStockStore` built from the same :class:`Settings`). With
``STOCKSYNC_REDIS_CLUSTER=true`` the URL names one seed node of a cluster: the store's plain
key commands go through redis-py's :class:`RedisCluster` and its script calls through a
:class:`ClusterTransport` (one blocking pool per primary).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast

import anyio
import hiredis
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import AbstractConnection, parse_url

from stocksync.config import Settings
from stocksync.store.base import BatchObserver, ScriptObserver
from stocksync.store.cluster_transport import ClusterTransport
from stocksync.store.embedded import EmbeddedRedis
from stocksync.store.keys import Keys
from stocksync.store.migrate import migrate_store, migrate_to_domains, reindex_reservations
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.replica_wait import ReplicaWait
from stocksync.store.transport import StandaloneTransport, Transport

POOL_WARM_MAX = 16  # connections opened at start: the first requests don't pay the connect
# Oldest servers with what the store needs: functions (FUNCTION LOAD / FCALL), and the stream
# commands the outbox uses. Valkey 7.2 reports itself as redis_version 7.2.4 too.
MINIMUM_REDIS = (7, 0)
MINIMUM_VALKEY = (7, 2)


class UnsupportedServer(RuntimeError):
    """The Redis server is older than stocksync supports."""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def server_version(info: dict[str, object]) -> tuple[str, tuple[int, ...]]:
    """("valkey" | "redis", version) from INFO server."""
    if "valkey_version" in info:
        return "valkey", _version(str(info["valkey_version"]))
    return "redis", _version(str(info.get("redis_version", "0")))


def require_supported_server(info: dict[str, object]) -> None:
    """Raise :class:`UnsupportedServer`, naming the server and what is needed, when too old."""
    name, version = server_version(info)
    minimum = MINIMUM_VALKEY if name == "valkey" else MINIMUM_REDIS
    if version < minimum:
        found = ".".join(map(str, version)) or "unknown"
        raise UnsupportedServer(
            f"{name} {found} is too old for stocksync: it needs Redis >= 7.0 or Valkey >= 7.2 "
            "(server-side functions). Upgrade the server, or unset STOCKSYNC_REDIS_URL to use "
            "the bundled Valkey 8.1."
        )


@contextmanager
def redis_url(settings: Settings, on_restart: Callable[[], None] | None = None) -> Iterator[str]:
    """The configured Redis, or the bundled one (reused if `serve` already runs it).

    The bundled server is supervised: if it dies it is restarted on its data dir (its AOF
    brings back what was acknowledged) and ``on_restart`` is called.
    """
    if settings.redis_url is not None:
        yield settings.redis_url
        return
    embedded = EmbeddedRedis(
        settings.data_dir,
        appendfsync=settings.appendfsync,
        server_binary=settings.redis_server_binary,
    )
    url = embedded.start()
    embedded.supervise(on_restart)
    try:
        yield url
    finally:
        embedded.stop()


@asynccontextmanager
async def redis_endpoint(settings: Settings) -> AsyncIterator[str]:
    """:func:`redis_url` for async code: the bundled server starts and stops off the loop."""
    manager = redis_url(settings)
    url = await anyio.to_thread.run_sync(manager.__enter__)
    try:
        yield url
    finally:
        await anyio.to_thread.run_sync(manager.__exit__, None, None, None)


_PACKING: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def hiredis_packing(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """``base`` packing commands with hiredis (C). redis-py's asyncio connection packs in
    Python and rebuilds its buffer once per argument, and a batch FCALL carries hundreds of
    arguments: measured at 13 % of the API's CPU per reservation under load."""

    class HiredisPacking(base):  # type: ignore[valid-type,misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            if isinstance(args[0], str) and " " in args[0]:  # 'CONFIG GET' and the like
                args = (*args[0].encode().split(), *args[1:])
            encode = self.encoder.encode
            packed: Any = tuple(bytes(encode(arg)) for arg in args)
            return [hiredis.pack_command(packed)]

    if base not in _PACKING:
        HiredisPacking.__name__ = HiredisPacking.__qualname__ = f"Hiredis{base.__name__}"
        _PACKING[base] = HiredisPacking
    return _PACKING[base]


async def open_redis(url: str, pool_size: int, pool_timeout: float) -> Redis:
    """A client on a blocking pool (waits for a free connection instead of failing), warmed."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=pool_timeout,
        decode_responses=True,
        health_check_interval=30,
    )
    pool.connection_class = hiredis_packing(pool.connection_class)
    client = Redis.from_pool(pool)  # the client owns the pool: aclose() disconnects it

    async def ping() -> None:
        await client.ping()

    async with anyio.create_task_group() as tg:
        for _ in range(min(pool_size, POOL_WARM_MAX)):
            tg.start_soon(ping)
    return client


def node_client(url: str, host: str, port: int, pool_size: int, pool_timeout: float) -> Redis:
    """A client on a blocking pool for one cluster node: the seed ``url``'s credentials and
    options, another host and port. Connections open on first use."""
    options: dict[str, Any] = dict(parse_url(url))
    options.update(host=host, port=port)
    pool = BlockingConnectionPool(
        max_connections=pool_size,
        timeout=pool_timeout,
        decode_responses=True,
        health_check_interval=30,
        **options,
    )
    pool.connection_class = hiredis_packing(pool.connection_class)
    return Redis.from_pool(pool)


async def open_cluster(url: str, pool_size: int, pool_timeout: float) -> RedisCluster:
    """A cluster client from one seed node, its slot map read before any concurrent use.

    Its per-node pools do not block when full (redis-py raises MaxConnectionsError), so they
    get twice the script pools' size: they carry only the plain key commands."""
    cluster = RedisCluster.from_url(
        url, decode_responses=True, max_connections=2 * pool_size, health_check_interval=30
    )
    await cluster.initialize()
    return cluster


def replica_wait(settings: Settings) -> ReplicaWait:
    return ReplicaWait(settings.replica_wait, settings.replica_wait_timeout_ms)


@asynccontextmanager
async def open_client(
    settings: Settings, url: str, pool_size: int
) -> AsyncIterator[tuple[Redis, Transport]]:
    """The client for plain key commands and the transport for script calls, both checked
    against :func:`require_supported_server` (on a cluster: every primary); closed on exit."""
    if not settings.redis_cluster:
        client = await open_redis(url, pool_size, settings.redis_pool_timeout)
        try:
            require_supported_server(await client.info("server"))
            yield client, StandaloneTransport(client, replica_wait(settings))
        finally:
            await client.aclose()
        return
    cluster = await open_cluster(url, pool_size, settings.redis_pool_timeout)
    transport = ClusterTransport(
        cluster,
        lambda host, port: node_client(url, host, port, pool_size, settings.redis_pool_timeout),
        wait=replica_wait(settings),
        retry_seconds=settings.redis_cluster_retry_seconds,
    )
    try:

        async def info(client: Redis) -> dict[str, Any]:
            server: dict[str, Any] = await client.info("server")
            return server

        for server in await transport.on_each_primary(info):
            require_supported_server(server)
        # The store types its client as Redis: the plain key commands it sends (one slot
        # each) are the same calls on a RedisCluster.
        yield cast("Redis", cluster), transport
    finally:
        await transport.aclose()
        await cluster.aclose()


@asynccontextmanager
async def open_store(
    settings: Settings,
    url: str,
    *,
    pool_size: int | None = None,
    observe: ScriptObserver | None = None,
    observe_batch: BatchObserver | None = None,
) -> AsyncIterator[RedisStockStore]:
    """The store on ``url``, configured by ``settings``; its client closes on exit.

    ``pool_size`` overrides ``settings.redis_pool_size`` for processes that need few
    connections (the CLI, a worker). The function library is loaded (libraries of other
    stocksync builds are removed: see :meth:`ScriptStore.load_library`).
    """
    size = settings.redis_pool_size if pool_size is None else pool_size
    async with open_client(settings, url, size) as (client, transport):
        # Before any script of this release runs: keys an older release wrote get its layout.
        await migrate_to_domains(client, settings.namespace)
        await migrate_store(client, Keys(settings.namespace))
        store = RedisStockStore(
            client,
            settings,
            observe=observe,
            observe_batch=observe_batch,
            transport=transport,
        )
        await store.load_library()
        await reindex_reservations(store)  # needs the library: the `reindex` operation
        yield store
