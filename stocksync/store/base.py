"""ScriptStore: a namespace's Redis client, its key names and its function library.

Every change goes through :meth:`ScriptStore.run`: one operation of the function library on one
stock domain (``KEYS[1]`` = the domain's anchor key, so the call goes to the node serving the
domain's slot) with the settings every operation reads (retention, outbox cap) first in
``ARGV``. Operations that change state are queued to the domain's :class:`Batcher` and go to
Redis in one ``batch`` FCALL with the others that arrived together (group commit); reads are
their own FCALL. The namespace's directory (which domain holds what) is called the same way.
The store's parts (routing, reads, stock changes, reservations, pickups, recovery) build on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from stocksync.config import Settings
from stocksync.domain.errors import DomainMoving
from stocksync.domain.model import DEFAULT_DOMAIN
from stocksync.store.batcher import BATCH_MAX, QUEUE_MAX, Batcher, Operation
from stocksync.store.keys import Directory, Keys
from stocksync.store.outbox import Outbox
from stocksync.store.scripts import BATCHED, LIBRARY_PREFIX, Library, library
from stocksync.store.transport import StandaloneTransport, Transport

# Domains a process keeps key names, outboxes and batchers for; a namespace has far fewer.
DOMAINS_MAX = 256

ScriptObserver = Callable[[str, float], None]  # script name, seconds it took
BatchObserver = Callable[[int], None]  # operations in one batch FCALL

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
        self,
        client: Redis,
        settings: Settings,
        *,
        observe: ScriptObserver | None = None,
        observe_batch: BatchObserver | None = None,
        batch_max: int = BATCH_MAX,
        queue_max: int = QUEUE_MAX,
        functions: Library | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.client = client
        self.transport: Transport = transport or StandaloneTransport(client)
        self.settings = settings
        self.keys = Keys(settings.namespace)  # the default domain's
        self.directory = Directory(settings.namespace)
        self.outbox = Outbox(client, self.keys)
        self.library = functions or library()
        self._head = (settings.retention_seconds, settings.outbox_maxlen)
        self._observe = observe
        self._observe_batch = observe_batch
        self._batch_limits = (batch_max, queue_max)
        self._keys: dict[str, Keys] = {DEFAULT_DOMAIN: self.keys}
        self._outboxes: dict[str, Outbox] = {DEFAULT_DOMAIN: self.outbox}
        self._batchers: dict[str, Batcher] = {}
        self.batcher = self._batcher(self.keys.anchor)
        self._reload: asyncio.Future[None] | None = None

    def keys_of(self, domain: str) -> Keys:
        """The key names of a domain (raises ValueError for an invalid domain name)."""
        found = self._keys.get(domain)
        if found is None:
            if len(self._keys) >= DOMAINS_MAX:
                raise ValueError(f"more than {DOMAINS_MAX} stock domains")
            found = self._keys[domain] = Keys(self.settings.namespace, domain)
        return found

    def outbox_of(self, domain: str) -> Outbox:
        """A domain's outbox stream."""
        found = self._outboxes.get(domain)
        if found is None:
            found = self._outboxes[domain] = Outbox(self.client, self.keys_of(domain))
        return found

    def _batcher(self, anchor: str) -> Batcher:
        found = self._batchers.get(anchor)
        if found is None:
            batch_max, queue_max = self._batch_limits

            async def send(ops: Sequence[Operation]) -> list[Any]:
                return await self._send_batch(ops, anchor)

            found = Batcher(send, batch_max=batch_max, queue_max=queue_max)
            self._batchers[anchor] = found
        return found

    def _anchor(self, domain: str | None) -> str:
        """KEYS[1] for a domain; None is the namespace's directory."""
        return self.directory.anchor if domain is None else self.keys_of(domain).anchor

    async def ping(self) -> None:
        """Raises when Redis does not answer (readiness)."""
        await self.client.ping()

    async def libraries(self) -> list[str]:
        """The stocksync libraries the server holds (this build's and other builds')."""
        return await self.transport.libraries(LIBRARY_PREFIX)

    async def library_loaded(self) -> bool:
        """Whether the server has this build's library; a restart without data or a failover
        loses it (it is loaded again by the first call that misses it)."""
        return self.library.name in await self.libraries()

    async def load_library(self, *, prune: bool = True) -> list[str]:
        """Load this build's library (FUNCTION LOAD REPLACE). With ``prune`` (at a process's
        start), delete every other stocksync build's library first: a process still running
        another build loads its own again on its next call, so only builds that run remain.
        Returns the libraries deleted."""
        pruned = []
        if prune:
            for name in await self.libraries():
                if name != self.library.name:
                    await self.transport.delete_library(name)
                    pruned.append(name)
        await self.transport.load_library(self.library.source)
        return pruned

    async def _reload_library(self) -> None:
        """Load the library once for every call that found it missing at the same time."""
        if self._reload is None or self._reload.done():
            self._reload = asyncio.ensure_future(self._load_missing())
        await asyncio.shield(self._reload)

    async def _load_missing(self) -> None:
        await self.load_library(prune=False)

    async def fcall(
        self,
        function: str,
        args: Sequence[str | int],
        *,
        durable: bool = False,
        anchor: str | None = None,
    ) -> Any:
        """FCALL one of this build's functions with ``KEYS[1] = anchor`` (default: the default
        domain's); a missing library is loaded and the call retried once (a missing function
        never ran, so the retry is safe). A frozen domain (moving to another node) raises
        :class:`DomainMoving`: nothing ran."""
        name = self.library.function(function)
        key = self.keys.anchor if anchor is None else anchor
        try:
            return await self.transport.fcall(name, key, args, durable=durable)
        except ResponseError as exc:
            text = str(exc)
            if text.startswith("FROZEN"):
                raise DomainMoving(text.removeprefix("FROZEN ")) from exc
            if "function not found" not in text.lower():
                raise
        await self._reload_library()
        return await self.transport.fcall(name, key, args, durable=durable)

    async def run(self, name: str, *args: str | int, domain: str = DEFAULT_DOMAIN) -> Any:
        """Run one operation on a domain; its reply as Redis gave it (a Lua error raises)."""
        return await self._run(name, args, self._anchor(domain))

    async def run_directory(self, name: str, *args: str | int) -> Any:
        """Run one operation on the namespace's directory."""
        return await self._run(name, args, self.directory.anchor)

    async def _run(self, name: str, args: Sequence[str | int], anchor: str) -> Any:
        started = perf_counter()
        try:
            if name in BATCHED:
                (future,) = self._batcher(anchor).submit([(name, args)], ACTOR.get())
                return await future
            return await self.fcall(name, [*self._head, *args, ACTOR.get()], anchor=anchor)
        finally:
            if self._observe is not None:
                self._observe(name, perf_counter() - started)

    async def run_many(
        self, calls: Sequence[tuple[str, Sequence[str | int]]], *, domain: str = DEFAULT_DOMAIN
    ) -> list[Any]:
        """Queue many changes of one domain at once (they share batches); each reply, or the
        exception of a Lua error, in order. Each is its own atomic operation, not one
        transaction. At most the batcher's queue bound (4,096) at once: callers send files and
        pages in chunks."""
        batcher = self._batcher(self._anchor(domain))
        if len(calls) > batcher.queue_max:  # could never fit: a caller's error
            raise ValueError(f"{len(calls)} operations at once; at most {batcher.queue_max}")
        futures = batcher.submit(calls, ACTOR.get())
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def run_pipelined(
        self, calls: Sequence[tuple[str, Sequence[str | int]]], *, domain: str = DEFAULT_DOMAIN
    ) -> list[Any]:
        """:meth:`run_many`, raising the first Lua error."""
        replies = await self.run_many(calls, domain=domain)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def _send_batch(self, ops: Sequence[Operation], anchor: str) -> list[Any]:
        args: list[str | int] = [*self._head, len(ops)]
        for op in ops:
            args += (op.name, len(op.args) + 1, *op.args, op.actor)
        started = perf_counter()
        try:
            replies: list[Any] = await self.fcall("batch", args, durable=True, anchor=anchor)
            return replies
        finally:
            if self._observe is not None:
                self._observe("batch", perf_counter() - started)
            if self._observe_batch is not None:
                self._observe_batch(len(ops))
