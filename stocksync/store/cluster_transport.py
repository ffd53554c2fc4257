"""Script calls on a Redis/Valkey Cluster: each goes to the primary of its key's slot.

Topology (slot -> primary, and whether the shard has a replica) comes from redis-py's asyncio
:class:`RedisCluster` (its nodes manager's slot map). The calls themselves go through one plain
:class:`Redis` client per primary (a blocking pool, hiredis packing; made by ``connect``), so
a durable FCALL and its replica wait share one connection (WAIT counts only that connection's
writes) and an ASKING precedes its FCALL on the same connection.

What a call survives:

- ``MOVED`` (the slot has a new owner: a finished migration, a failover): the slot map is
  patched from the redirect and the call goes to the new owner. The FCALL never ran on the
  node that answered MOVED.
- ``ASK`` (the slot is being migrated and this key is already on the target): ``ASKING`` then
  the FCALL on the target, on one connection; the slot map is not changed.
- ``TRYAGAIN``, ``CLUSTERDOWN``, and connection errors or timeouts to a failed primary: the
  topology is refreshed and the call retried with a growing backoff, for at most
  ``retry_seconds``; then the last error is raised (the API answers 503).

A retry after a connection error or timeout may repeat a call that DID run (the reply was
lost, not the call): every stocksync operation is idempotent (reservation ids, stock-change
event ids), so the repeat answers as the first did and changes nothing twice. A redirect or
``function not found`` reply means the call did not run.

After a failover the promoted replica already holds the function library (FUNCTION LOAD is
replicated); a brand-new primary may not: its ``function not found`` propagates unchanged and
the store loads the library on every primary (:meth:`load_library`) and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    ConnectionError,
    MovedError,
    ResponseError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)

from stocksync.store.replica_wait import ReplicaWait
from stocksync.store.transport import _field, call_on

Connect = Callable[[str, int], Redis]  # a client for one node (host, port)
T = TypeVar("T")

# Errors after which the slot map may be stale and a retry may succeed.
RETRIED = (
    ConnectionError,
    TimeoutError,
    TryAgainError,
    ClusterDownError,
    SlotNotCoveredError,
)
MAX_REDIRECTS = 16  # MOVED/ASK in a row for one call: a loop, not a migration
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 1.0
# How often calls refresh the topology in the background even without an error, so that
# `auto` starts waiting again once a shard's replica is back (a restarted node rejoins as a
# replica without any redirect telling us).
TOPOLOGY_REFRESH_SECONDS = 15.0


class ClusterTransport:
    """Routes each script call to the primary that owns its key's slot."""

    def __init__(
        self,
        cluster: RedisCluster,
        connect: Connect,
        *,
        wait: ReplicaWait | None = None,
        retry_seconds: float = 10.0,
    ) -> None:
        self.cluster = cluster
        self.wait = wait or ReplicaWait("auto")
        self.retry_seconds = retry_seconds
        self._connect = connect
        self._clients: dict[str, Redis] = {}
        self._refreshing: asyncio.Future[None] | None = None
        self._next_refresh = time.monotonic() + TOPOLOGY_REFRESH_SECONDS

    # -- topology ---------------------------------------------------------------------------

    def client(self, host: str, port: int | str) -> Redis:
        """The plain client of the node at host:port (made on first use, kept until
        :meth:`aclose`)."""
        name = f"{host}:{port}"
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self._connect(host, int(port))
        return client

    def primary(self, slot: int) -> ClusterNode:
        """The node the slot map names as the slot's primary."""
        node: ClusterNode = self.cluster.nodes_manager.get_node_from_slot(slot)
        return node

    def has_replica(self, slot: int) -> bool:
        """Whether the slot map lists a replica for the slot (failed replicas are not
        listed by CLUSTER SLOTS once the cluster marks them failed)."""
        nodes = self.cluster.nodes_manager.slots_cache.get(slot) or []
        return len(nodes) > 1

    def primaries(self) -> list[ClusterNode]:
        nodes: list[ClusterNode] = self.cluster.get_primaries()
        return nodes

    async def refresh(self) -> None:
        """Read the topology again (CLUSTER SLOTS); concurrent callers share one refresh."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
        await asyncio.shield(self._refreshing)

    async def _refresh(self) -> None:
        self._next_refresh = time.monotonic() + TOPOLOGY_REFRESH_SECONDS
        await self.cluster.nodes_manager.initialize()

    def _refresh_now_and_then(self) -> None:
        """Start a background refresh when the last one is old (never blocks the call)."""
        if time.monotonic() < self._next_refresh:
            return
        if self._refreshing is None or self._refreshing.done():
            self._next_refresh = time.monotonic() + TOPOLOGY_REFRESH_SECONDS
            self._refreshing = asyncio.ensure_future(self._refresh())
            # A failed background refresh is retried later; don't leave it unobserved.
            self._refreshing.add_done_callback(_ignore_result)

    # -- script calls -----------------------------------------------------------------------

    async def fcall(
        self, function: str, key: str, args: Sequence[str | int], *, durable: bool = False
    ) -> Any:
        """FCALL on the slot's primary, following redirects and riding out a failover."""
        self._refresh_now_and_then()
        slot = key_slot(key.encode())
        deadline = time.monotonic() + self.retry_seconds
        attempt = redirects = 0
        ask_target: tuple[str, int] | None = None  # (host, port) of an ASK redirect
        while True:
            if ask_target is None:
                node = self.primary(slot)
                host, port = node.host, node.port
            else:
                host, port = ask_target
            wait_command = (
                self.wait.command(has_replica=self.has_replica(slot)) if durable else None
            )
            try:
                return await call_on(
                    self.client(host, port),
                    function,
                    key,
                    args,
                    wait=self.wait,
                    wait_command=wait_command,
                    asking=ask_target is not None,
                )
            except MovedError as exc:  # before AskError: a subclass of it
                await self.cluster.nodes_manager.move_slot(exc)
                ask_target = None
                redirects += 1
            except AskError as exc:
                ask_target = (exc.host, int(exc.port))
                redirects += 1
            except RETRIED:
                ask_target = None
                if time.monotonic() >= deadline:
                    raise
                await self._back_off(attempt)
                attempt += 1
            if redirects > MAX_REDIRECTS:
                raise ClusterError(f"{redirects} redirects in a row for slot {slot}")

    async def _back_off(self, attempt: int) -> None:
        await asyncio.sleep(min(BACKOFF_FIRST_SECONDS * 2**attempt, BACKOFF_MAX_SECONDS))
        with contextlib.suppress(*RETRIED, ClusterError):  # the next attempt says what's wrong
            await self.refresh()

    async def on_each_primary(self, act: Callable[[Redis], Awaitable[T]]) -> list[T]:
        """``act`` on every primary, retried (topology refreshed) like a script call."""
        deadline = time.monotonic() + self.retry_seconds
        attempt = 0
        while True:
            try:
                clients = [self.client(node.host, node.port) for node in self.primaries()]
                return list(await asyncio.gather(*(act(client) for client in clients)))
            except RETRIED:
                if time.monotonic() >= deadline:
                    raise
                await self._back_off(attempt)
                attempt += 1

    # -- the function library ---------------------------------------------------------------

    async def load_library(self, source: str) -> None:
        async def load(client: Redis) -> None:
            await client.function_load(source, replace=True)

        await self.on_each_primary(load)

    async def libraries(self, prefix: str) -> list[str]:
        async def names(client: Redis) -> set[str]:
            listed: list[Any] = await client.function_list(library=f"{prefix}*")
            return {str(_field(entry, "library_name")) for entry in listed}

        return sorted(set().union(*await self.on_each_primary(names)))

    async def delete_library(self, name: str) -> None:
        async def delete(client: Redis) -> None:
            try:
                await client.function_delete(name)
            except ResponseError as exc:  # this primary never had it (a new node)
                if "library not found" not in str(exc).lower():
                    raise

        await self.on_each_primary(delete)

    async def aclose(self) -> None:
        """Close the per-primary clients (the cluster client is its owner's to close)."""
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError, *RETRIED, ClusterError):
                await self._refreshing
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def _ignore_result(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
