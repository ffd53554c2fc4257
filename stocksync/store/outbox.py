"""The outbox stream of a namespace: the scripts append to it, every reader goes through here.

Each entry is one event (DESIGN rule 5): ``kind``, ``sku``, ``loc``, ``seq``, ``at`` and the
kind's own fields. Readers are the ledger copy and the Shopify push (each through a consumer
group of its own), the sale write-through (a range read of the ids a fulfilment returned) and
the event streams of the API (a plain tail). They all get :class:`OutboxEvent` values.

Replies are expected in RESP2 shape (redis-py's default protocol).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.exceptions import ResponseError

from stocksync.domain.clock import ms_to_datetime
from stocksync.store.keys import Keys

Entry = tuple[str, dict[str, str]]  # stream id, fields ({} when the entry was deleted)

_HEADER = frozenset({"kind", "sku", "loc", "seq", "at"})


def stream_order(stream_id: str) -> tuple[int, int]:
    """A stream id (``ms-counter``) as a sortable pair."""
    ms, _, counter = stream_id.partition("-")
    return int(ms), int(counter or 0)


def next_stream_id(stream_id: str) -> str:
    ms, counter = stream_order(stream_id)
    return f"{ms}-{counter + 1}"


@dataclass(frozen=True)
class OutboxEvent:
    """One entry of a namespace's outbox stream."""

    namespace: str
    stream_id: str
    kind: str
    sku: str  # '' for events that are not about a SKU (location_upserted)
    location_id: str
    seq: int  # per-SKU sequence number; 0 when sku is ''
    at_ms: int  # Redis server time of the script that emitted it
    fields: dict[str, str]  # every other field, as strings

    @property
    def event_id(self) -> str:
        """Unique across namespaces: the ledger's key for this event."""
        return f"{self.namespace}/{self.stream_id}"

    @property
    def at(self) -> datetime:
        return ms_to_datetime(self.at_ms)

    @property
    def order(self) -> tuple[int, int]:
        """Position in the stream."""
        return stream_order(self.stream_id)


def decode_event(namespace: str, stream_id: str, fields: dict[str, str]) -> OutboxEvent:
    """An outbox entry as read from the stream (decoded field/value pairs)."""
    try:
        return OutboxEvent(
            namespace=namespace,
            stream_id=stream_id,
            kind=fields["kind"],
            sku=fields["sku"],
            location_id=fields["loc"],
            seq=int(fields["seq"]),
            at_ms=int(fields["at"]),
            fields={k: v for k, v in fields.items() if k not in _HEADER},
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"malformed outbox entry {stream_id}: {fields!r}") from exc


def decode_stored_events(namespace: str, stored: str) -> tuple[OutboxEvent, ...]:
    """The events a fulfilment keeps on its reservation (``_lib.lua``'s ``finish``), as
    JSON ``[[stream id, [field, value, ...]], ...]``; '' when there are none."""
    if not stored:
        return ()
    return tuple(
        decode_event(
            namespace,
            str(stream_id),
            {str(entry[i]): str(entry[i + 1]) for i in range(0, len(entry), 2)},
        )
        for stream_id, entry in json.loads(stored)
    )


@dataclass(frozen=True)
class GroupLag:
    """How far a consumer group is behind the head of the stream."""

    events: int  # pending (delivered, unacknowledged) plus not yet delivered
    oldest_ms: int | None  # stream time of the oldest of those; None when caught up
    now_ms: int  # Redis server time when measured

    @property
    def seconds(self) -> float:
        return 0.0 if self.oldest_ms is None else max(0, self.now_ms - self.oldest_ms) / 1000


@dataclass(frozen=True)
class Consumer:
    """One consumer of a group, as XINFO CONSUMERS reports it."""

    name: str
    pending: int
    idle_ms: int  # since it last read, claimed or acknowledged


@dataclass(frozen=True)
class TrimReport:
    lag: GroupLag | None  # of the measured group; None when it does not exist
    dead_groups: tuple[str, ...]  # groups ignored because every consumer was idle too long


def _entries(raw: Any) -> list[Entry]:
    # The client already parsed each entry's fields into a dict of its own: no copy.
    return [(str(i), fields or {}) for i, fields in raw or [] if i is not None]


def _stream_entries(reply: Any) -> list[Entry]:
    """Entries of an XREAD / XREADGROUP reply: ``[[stream, [(id, fields), ...]], ...]``."""
    if isinstance(reply, dict):
        raise TypeError("outbox readers expect RESP2 replies (protocol=2)")
    return [e for _, entries in reply or [] for e in _entries(entries)]


class Outbox:
    """Reads, consumer groups and trimming of one stock domain's outbox stream."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.domain = keys.domain
        # The ledger's name for the domain's events (the namespace itself for `default`).
        self.namespace = keys.ledger_namespace
        self.stream = keys.outbox

    def decode(self, entries: Sequence[Entry]) -> list[OutboxEvent]:
        """The events of ``entries``, skipping deleted ones (empty fields)."""
        return [decode_event(self.namespace, i, f) for i, f in entries if f]

    # -- consumer groups -------------------------------------------------------------------

    async def create_group(self, group: str, start: str = "0") -> None:
        """Create ``group`` reading from ``start`` ('0': the whole stream, '$': new entries);
        an existing group is left as it is."""
        try:
            await self.client.xgroup_create(self.stream, group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def destroy_group(self, group: str) -> None:
        if await self.client.exists(self.stream):
            await self.client.xgroup_destroy(self.stream, group)

    async def read_group(
        self, group: str, consumer: str, *, start: str, count: int, block_ms: int | None = None
    ) -> list[Entry]:
        """XREADGROUP: ``start`` '>' for new entries, '0' for this consumer's pending ones."""
        reply = await self.client.xreadgroup(
            group, consumer, {self.stream: start}, count=count, block=block_ms
        )
        return _stream_entries(reply)

    async def claim(
        self, group: str, consumer: str, *, idle_ms: int, cursor: str, count: int
    ) -> tuple[str, list[Entry], list[str]]:
        """XAUTOCLAIM entries pending longer than ``idle_ms``: the next cursor, the entries,
        and the ids of claimed entries that had been deleted from the stream (trimmed before
        they were read). The server drops those from the pending list itself (Redis >= 7.0,
        Valkey), so they are never delivered again.
        """
        reply = await self.client.xautoclaim(
            self.stream, group, consumer, idle_ms, cursor, count=count
        )
        deleted = [str(entry_id) for entry_id in reply[2]] if len(reply) > 2 else []
        return str(reply[0]), _entries(reply[1]), deleted

    async def ack(self, group: str, ids: Sequence[str]) -> None:
        if ids:
            await self.client.xack(self.stream, group, *ids)

    async def _dead(self, group: dict[str, Any], idle_ms: int) -> bool:
        """Every consumer of ``group`` idle longer than ``idle_ms``. A group nobody has read
        from yet is not dead: its age is unknown, and it may be about to start."""
        consumers: list[dict[str, Any]] = await self.client.xinfo_consumers(
            self.stream, group["name"]
        )
        return bool(consumers) and all(int(c["idle"]) > idle_ms for c in consumers)

    async def trim_acknowledged(self, measure: str, dead_after_ms: int) -> TrimReport:
        """Trim every entry all live consumer groups have acknowledged; report the lag of
        the group ``measure``.

        A group other than ``measure`` whose consumers have all been idle for
        ``dead_after_ms`` (a connector killed without a clean stop) no longer holds the trim
        back: otherwise the stream would grow forever. Its owner re-attaches at the end of the
        stream when it starts again (the Shopify push does, with a full sync).
        """
        groups: list[dict[str, Any]] = await self.client.xinfo_groups(self.stream)
        safe: list[str] = []
        dead: list[str] = []
        oldest: str | None = None  # the measured group's oldest unacknowledged entry
        mine: dict[str, Any] | None = None
        for group in groups:
            if group["name"] != measure and await self._dead(group, dead_after_ms):
                dead.append(str(group["name"]))
                continue
            # Entries up to last-delivered-id were all delivered when XINFO answered; those
            # not pending afterwards are acknowledged, so everything below this bound may go.
            bound = next_stream_id(str(group["last-delivered-id"]))
            if int(group["pending"]) > 0:
                first = (await self.client.xpending(self.stream, group["name"]))["min"]
                if first is not None:
                    bound = min(bound, str(first), key=stream_order)
                    if group["name"] == measure:
                        oldest = str(first)
            safe.append(bound)
            if group["name"] == measure:
                mine = group
        if safe:
            await self.client.xtrim(
                self.stream, minid=min(safe, key=stream_order), approximate=False
            )
        if mine is None:
            return TrimReport(None, tuple(dead))
        return TrimReport(await self._lag(mine, oldest), tuple(dead))

    async def _lag(self, group: dict[str, Any], oldest_pending: str | None) -> GroupLag:
        """The lag of ``group`` (an XINFO GROUPS entry) whose oldest pending entry is
        ``oldest_pending``."""
        # TIME on its own: a cluster client's pipeline refuses a command without a key.
        seconds, micros = await self.client.time()
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xlen(self.stream)
            pipe.xrange(self.stream, "(" + str(group["last-delivered-id"]), "+", count=1)
            length, undelivered = await pipe.execute()
        oldest = oldest_pending
        if oldest is None and undelivered:
            oldest = str(undelivered[0][0])
        lag = group.get("lag")  # Redis >= 7; before that the trimmed length is the estimate
        events = int(group["pending"]) + int(lag) if lag is not None else int(length)
        return GroupLag(
            events=events,
            oldest_ms=None if oldest is None else stream_order(oldest)[0],
            now_ms=int(seconds) * 1000 + int(micros) // 1000,
        )

    async def _group(self, name: str) -> dict[str, Any] | None:
        if not await self.client.exists(self.stream):
            return None
        groups: list[dict[str, Any]] = await self.client.xinfo_groups(self.stream)
        return next((g for g in groups if g["name"] == name), None)

    async def group_lag(self, name: str) -> GroupLag | None:
        """How far ``name`` is behind, measured without trimming (readiness, status); None
        when the group does not exist. Before Redis 7 the events count also holds entries
        acknowledged since the group's last trim."""
        group = await self._group(name)
        if group is None:
            return None
        oldest = None
        if int(group["pending"]) > 0:
            first = (await self.client.xpending(self.stream, name))["min"]
            oldest = None if first is None else str(first)
        return await self._lag(group, oldest)

    async def consumers(self, name: str) -> list[Consumer] | None:
        """The consumers of group ``name``, least idle first; None when it does not exist."""
        if await self._group(name) is None:
            return None
        raw: list[dict[str, Any]] = await self.client.xinfo_consumers(self.stream, name)
        found = [Consumer(str(c["name"]), int(c["pending"]), int(c["idle"])) for c in raw]
        return sorted(found, key=lambda c: c.idle_ms)

    # -- plain reads -----------------------------------------------------------------------

    async def last_id(self) -> str:
        """The id of the newest entry ('0-0' when the stream is empty)."""
        last = cast("list[tuple[str, object]]", await self.client.xrevrange(self.stream, count=1))
        return str(last[0][0]) if last else "0-0"

    async def tail(self, cursor: str, *, count: int, block_ms: int) -> list[OutboxEvent]:
        """Events after ``cursor``, waiting up to ``block_ms`` for the first (XREAD BLOCK)."""
        reply = await self.client.xread({self.stream: cursor}, count=count, block=block_ms)
        return self.decode(_stream_entries(reply))

    def dedicated(self) -> Outbox:
        """This outbox on a connection of its own, without a read timeout: a blocking tail
        holds its connection, so it must not take one of the shared pool's. Close it with
        :meth:`aclose`.

        On a cluster the connection is a plain one to the node that serves the stream's slot
        now (a cluster client has no pool of its own); after a failover or a slot migration
        the tail's read fails and the reader opens a new one."""
        if isinstance(self.client, RedisCluster):
            node = self.client.get_node_from_key(self.stream)
            if node is None:
                raise ConnectionError(f"no cluster node serves {self.stream!r}")
            kwargs = {**node.connection_kwargs, "host": node.host, "port": node.port}
            connection_class = node.connection_class
        else:
            pool = self.client.connection_pool
            kwargs, connection_class = dict(pool.connection_kwargs), pool.connection_class
        kwargs["socket_timeout"] = None
        own = ConnectionPool(connection_class=connection_class, max_connections=1, **kwargs)
        return Outbox(Redis.from_pool(own), self.keys)

    async def aclose(self) -> None:
        await self.client.aclose()
