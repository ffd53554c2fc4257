"""ScriptStore: a namespace's Redis client, its key names and its registered scripts.

Every change goes through :meth:`ScriptStore.run`: one script call with the namespace's key
prefix as ``KEYS[1]`` and the settings every script reads (retention, outbox cap) first in
``ARGV``. The store's parts (reads, stock changes, reservations, pickups, recovery) build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from redis.asyncio import Redis

from stocksync.config import Settings
from stocksync.store.keys import Keys
from stocksync.store.outbox import Outbox
from stocksync.store.scripts import register_scripts

ScriptObserver = Callable[[str, float], None]  # script name, seconds it took

# Who is acting in this task: every script call passes it last, and every event records it
# (the ledger's ``stock_movements.actor``). Set where a request or a job starts.
ACTOR: ContextVar[str] = ContextVar("stocksync_actor", default="")
ACTOR_MAX_LENGTH = 80
# The HTTP request this task serves ('' outside one): every log line carries it, and so does
# the answer (``X-Request-Id``, problem bodies), so a client's report finds the server's lines.
REQUEST_ID: ContextVar[str] = ContextVar("stocksync_request_id", default="")


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Changes made inside the block are recorded as made by ``actor``."""
    token = ACTOR.set(actor[:ACTOR_MAX_LENGTH])
    try:
        yield
    finally:
        ACTOR.reset(token)


class ScriptStore:
    """One namespace of stocksync in Redis, configured by :class:`Settings`."""

    def __init__(
        self, client: Redis, settings: Settings, *, observe: ScriptObserver | None = None
    ) -> None:
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.namespace)
        self.outbox = Outbox(client, self.keys)
        self._scripts = register_scripts(client)
        self._head = (settings.retention_seconds, settings.outbox_maxlen)
        self._observe = observe

    async def ping(self) -> None:
        """Raises when Redis does not answer (readiness)."""
        await self.client.ping()

    @property
    def script_shas(self) -> dict[str, str]:
        """Each operation script's SHA1, the name EVALSHA calls it by."""
        return {name: script.sha for name, script in self._scripts.items()}

    async def scripts_loaded(self) -> dict[str, bool]:
        """Which scripts Redis has (SCRIPT EXISTS). A missing one is loaded by its first call
        (redis-py reloads on NOSCRIPT); Redis forgets them all on a restart or a failover."""
        shas = self.script_shas
        found = await self.client.script_exists(*shas.values())
        return {name: bool(exists) for name, exists in zip(shas, found, strict=True)}

    async def load_scripts(self) -> None:
        """Load the scripts Redis lacks, so that no request pays the NOSCRIPT round trip."""
        loaded = await self.scripts_loaded()
        async with self.client.pipeline(transaction=False) as pipe:
            for name, exists in loaded.items():
                if not exists:
                    pipe.script_load(self._scripts[name].script)
            await pipe.execute()

    async def run(self, name: str, *args: str | int) -> Any:
        """Call one script; its reply as Redis gave it."""
        started = perf_counter()
        try:
            return await self._scripts[name](
                keys=[self.keys.prefix], args=[*self._head, *args, ACTOR.get()]
            )
        finally:
            if self._observe is not None:
                self._observe(name, perf_counter() - started)

    async def run_pipelined(self, calls: Sequence[tuple[str, Sequence[str | int]]]) -> list[Any]:
        """Many script calls in one round trip; each is its own atomic script run (not one
        transaction). Replies in order; a script error raises."""
        actor = ACTOR.get()
        async with self.client.pipeline(transaction=False) as pipe:
            for name, args in calls:
                await self._scripts[name](
                    keys=[self.keys.prefix], args=[*self._head, *args, actor], client=pipe
                )
            return list(await pipe.execute())
