"""How a script call reaches the server that owns its keys.

:class:`ScriptStore` sends every function call through a transport: ``fcall(function, key,
args)`` runs a function of the library with ``key`` as ``KEYS[1]`` on the primary that serves
that key's slot. A transport also loads the library on every primary. A call that finds the
library missing raises the server's ``function not found`` error (it never ran): the store loads
the library again and retries.

:class:`StandaloneTransport` is the single-server case: one client, one server. The cluster
case is :class:`stocksync.store.cluster_transport.ClusterTransport`. Both send a durable call
and its replica wait (:mod:`stocksync.store.replica_wait`) on one connection with
:func:`call_on`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio import Redis

from stocksync.store.replica_wait import ReplicaWait


class Transport(Protocol):
    """Where and how script calls go."""

    async def fcall(
        self, function: str, key: str, args: Sequence[str | int], *, durable: bool = False
    ) -> Any:
        """FCALL ``function`` with ``KEYS[1] = key``. ``durable``: the call changed state,
        so it is acknowledged only as the durability policy says (a replica wait)."""
        ...

    async def load_library(self, source: str) -> None:
        """FUNCTION LOAD REPLACE ``source`` on every primary."""
        ...

    async def libraries(self, prefix: str) -> list[str]:
        """Names of the libraries starting with ``prefix`` (on any primary), sorted."""
        ...

    async def delete_library(self, name: str) -> None:
        """FUNCTION DELETE ``name`` on every primary that holds it."""
        ...


def _field(entry: Any, name: str) -> Any:
    """A field of one FUNCTION LIST entry (a flat list in RESP2, a dict in RESP3)."""
    if isinstance(entry, dict):
        return entry[name]
    return entry[entry.index(name) + 1]


async def call_on(
    client: Redis,
    function: str,
    key: str,
    args: Sequence[str | int],
    *,
    wait: ReplicaWait,
    wait_command: tuple[str | int, ...] | None = None,
    asking: bool = False,
) -> Any:
    """FCALL on ``client``'s server; with ``wait_command`` (WAIT/WAITAOF) or ``asking``
    (an ASK redirect) all of them go in one pipeline, so on one connection: WAIT counts only
    its own connection's writes, and ASKING holds only for that connection's next command.

    The FCALL's own error (MOVED, ASK, function not found...) is raised as it came; a wait
    that no replica answered in time raises :class:`ReplicationTimeout`."""
    if wait_command is None and not asking:
        return await client.fcall(function, 1, key, *args)
    async with client.pipeline(transaction=False) as pipe:
        if asking:
            pipe.execute_command("ASKING")
        pipe.fcall(function, 1, key, *args)
        if wait_command is not None:
            pipe.execute_command(*wait_command)
        replies = await pipe.execute(raise_on_error=False)
    for reply in replies:  # ASKING's error, then the FCALL's: the first that failed
        if isinstance(reply, Exception):
            raise reply
    if wait_command is not None:
        wait.check(wait_command, replies[-1])
    return replies[1 if asking else 0]


class StandaloneTransport:
    """One server: every key is on it.

    ``wait``: a durable call waits for a replica when the mode is ``wait`` or ``waitaof``
    (the operator says the server has one); ``auto`` means off here, since nothing tells a
    standalone client whether its server's replica is meant to be there.
    """

    def __init__(self, client: Redis, wait: ReplicaWait | None = None) -> None:
        self.client = client
        self.wait = wait or ReplicaWait()
        self._wait_command = self.wait.command(has_replica=False)

    async def fcall(
        self, function: str, key: str, args: Sequence[str | int], *, durable: bool = False
    ) -> Any:
        if not durable or self._wait_command is None:
            return await self.client.fcall(function, 1, key, *args)
        return await call_on(
            self.client, function, key, args, wait=self.wait, wait_command=self._wait_command
        )

    async def load_library(self, source: str) -> None:
        await self.client.function_load(source, replace=True)

    async def libraries(self, prefix: str) -> list[str]:
        listed: list[Any] = await self.client.function_list(library=f"{prefix}*")
        return sorted(str(_field(entry, "library_name")) for entry in listed)

    async def delete_library(self, name: str) -> None:
        await self.client.function_delete(name)
