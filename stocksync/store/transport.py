"""How a script call reaches the server that owns its keys.

:class:`ScriptStore` sends every function call through a transport: ``fcall(function, key,
args)`` runs a function of the library with ``key`` as ``KEYS[1]`` on the primary that serves
that key's slot. A transport also loads the library on every primary. A call that finds the
library missing raises the server's ``function not found`` error (it never ran): the store loads
the library again and retries.

:class:`StandaloneTransport` is the single-server case: one client, one server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio import Redis


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


class StandaloneTransport:
    """One server: every key is on it."""

    def __init__(self, client: Redis) -> None:
        self.client = client

    async def fcall(
        self, function: str, key: str, args: Sequence[str | int], *, durable: bool = False
    ) -> Any:
        return await self.client.fcall(function, 1, key, *args)

    async def load_library(self, source: str) -> None:
        await self.client.function_load(source, replace=True)

    async def libraries(self, prefix: str) -> list[str]:
        listed: list[Any] = await self.client.function_list(library=f"{prefix}*")
        return sorted(str(_field(entry, "library_name")) for entry in listed)

    async def delete_library(self, name: str) -> None:
        await self.client.function_delete(name)
