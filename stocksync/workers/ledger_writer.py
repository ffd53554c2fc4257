"""The ledger writer: copies the outbox stream into the SQL ledger (DESIGN rule 5).

Entries are read through the consumer group ``ledger``, written to SQL in one transaction per
batch (in a worker thread) and acknowledged only after the commit, so a crash between the two
re-delivers them and the idempotent write makes that harmless. Entries a dead consumer left
pending are claimed after ``claim_idle_ms``. The stream is then trimmed below the oldest entry
that any consumer group still needs, never below an unacknowledged one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from stocksync.ledger.writer import SqlLedger, parse_event
from stocksync.metrics import Metrics
from stocksync.store.keys import Keys

log = logging.getLogger(__name__)

GROUP = "ledger"
MAX_BACKOFF_SECONDS = 30.0

Entry = tuple[str, dict[str, str]]  # stream id, fields ({} when the entry was deleted)


def _id(stream_id: str) -> tuple[int, int]:
    ms, _, counter = stream_id.partition("-")
    return int(ms), int(counter or 0)


def _next_id(stream_id: str) -> str:
    ms, counter = _id(stream_id)
    return f"{ms}-{counter + 1}"


async def ensure_group(client: Redis, stream: str) -> None:
    """Create the ``ledger`` group reading from the start of the stream (once)."""
    try:
        await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _entries(raw: Any) -> list[Entry]:
    return [(str(i), dict(fields or {})) for i, fields in raw or [] if i is not None]


async def read_entries(
    client: Redis, stream: str, consumer: str, batch: int, start: str, block_ms: int | None = None
) -> list[Entry]:
    """XREADGROUP: ``start`` '>' for new entries, '0' for this consumer's own pending ones.

    Expects RESP2 replies (redis-py's default protocol): ``[[stream, [(id, fields), ...]]]``.
    """
    reply = await client.xreadgroup(GROUP, consumer, {stream: start}, count=batch, block=block_ms)
    if isinstance(reply, dict):
        raise TypeError("the ledger writer reads streams over RESP2 (protocol=2)")
    return [e for _, entries in reply or [] for e in _entries(entries)]


async def claim_entries(
    client: Redis, stream: str, consumer: str, batch: int, idle_ms: int, cursor: str = "0-0"
) -> tuple[str, list[Entry]]:
    """XAUTOCLAIM entries pending longer than ``idle_ms``; returns the next cursor with them."""
    reply = await client.xautoclaim(stream, GROUP, consumer, idle_ms, cursor, count=batch)
    if any(entry_id is None for entry_id, _ in reply[1]):
        # Redis 6.2 claims an entry deleted from the stream as nil, without its id; it is ours
        # now, and our own pending list names it, so it can be acknowledged from there.
        log.error("claimed outbox entries were deleted before they reached the ledger")
        return str(reply[0]), await read_entries(client, stream, consumer, batch, "0")
    return str(reply[0]), _entries(reply[1])


async def process_batch(
    client: Redis, ledger: SqlLedger, namespace: str, metrics: Metrics, entries: Sequence[Entry]
) -> int:
    """Record ``entries`` in SQL, then acknowledge them; returns how many were acknowledged.

    Raises (acknowledging nothing) when the SQL write fails.
    """
    if not entries:
        return 0
    events = [parse_event(namespace, i, f) for i, f in entries if f]
    gone = [i for i, f in entries if not f]
    if gone:  # trimmed (MAXLEN) before they were written: nothing left to record
        log.error("outbox entries deleted before reaching the ledger: %s", gone[:10])
    written = await anyio.to_thread.run_sync(ledger.record, events) if events else 0
    await client.xack(Keys(namespace).outbox, GROUP, *(i for i, _ in entries))
    metrics.ledger_events_written.inc(len(events))
    metrics.ledger_batch_size.observe(len(events))
    log.debug("ledger: %d events recorded, %d new movements", len(events), written)
    return len(entries)


async def trim_and_measure(client: Redis, namespace: str, metrics: Metrics) -> None:
    """Trim what every consumer group has acknowledged; report the ledger group's lag."""
    stream = Keys(namespace).outbox
    groups: list[dict[str, Any]] = await client.xinfo_groups(stream)
    safe: list[str] = []
    oldest: str | None = None  # the ledger group's oldest unacknowledged entry
    mine: dict[str, Any] | None = None
    for group in groups:
        # Entries up to last-delivered-id were all delivered when XINFO answered; those not
        # pending afterwards are acknowledged, so everything below this bound may go.
        bound = _next_id(str(group["last-delivered-id"]))
        if int(group["pending"]) > 0:
            first = (await client.xpending(stream, group["name"]))["min"]
            if first is not None:
                bound = min(bound, str(first), key=_id)
                if group["name"] == GROUP:
                    oldest = str(first)
        safe.append(bound)
        if group["name"] == GROUP:
            mine = group
    if safe:
        await client.xtrim(stream, minid=min(safe, key=_id), approximate=False)
    if mine is None:
        return
    async with client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.xlen(stream)
        pipe.xrange(stream, "(" + str(mine["last-delivered-id"]), "+", count=1)
        (seconds, micros), length, undelivered = await pipe.execute()
    if oldest is None and undelivered:
        oldest = str(undelivered[0][0])
    lag = mine.get("lag")  # Redis >= 7; before that the trimmed length is the estimate
    metrics.ledger_lag_events.set(
        int(mine["pending"]) + int(lag) if lag is not None else int(length)
    )
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    metrics.ledger_lag_seconds.set(0 if oldest is None else max(0, now_ms - _id(oldest)[0]) / 1000)


async def drain_once(
    client: Redis,
    ledger: SqlLedger,
    namespace: str,
    metrics: Metrics,
    *,
    consumer: str,
    batch: int = 500,
    claim_idle_ms: int = 30_000,
) -> int:
    """Process everything available now, without blocking: this consumer's pending entries,
    entries idle for ``claim_idle_ms`` at other consumers, then new ones. Trims the stream and
    reports the lag; returns how many entries were acknowledged. Errors propagate.
    """
    stream = Keys(namespace).outbox
    await ensure_group(client, stream)
    done = 0
    while entries := await read_entries(client, stream, consumer, batch, "0"):
        done += await process_batch(client, ledger, namespace, metrics, entries)
    cursor = "0-0"
    while True:
        cursor, entries = await claim_entries(
            client, stream, consumer, batch, claim_idle_ms, cursor
        )
        done += await process_batch(client, ledger, namespace, metrics, entries)
        if cursor == "0-0":
            break
    while entries := await read_entries(client, stream, consumer, batch, ">"):
        done += await process_batch(client, ledger, namespace, metrics, entries)
    await trim_and_measure(client, namespace, metrics)
    return done


async def run_ledger_writer(
    client: Redis,
    ledger: SqlLedger,
    namespace: str,
    metrics: Metrics,
    *,
    consumer: str,
    batch: int = 500,
    block_ms: int = 1000,
    claim_idle_ms: int = 30_000,
    retry_initial_seconds: float = 0.5,
) -> None:
    """Copy the outbox into the ledger forever. A failed pass (SQL or Redis) is logged,
    counted and retried with exponential back-off; its entries stay pending, unacknowledged,
    and are re-read from this consumer's pending list before anything new.
    """
    stream = Keys(namespace).outbox
    backoff = retry_initial_seconds
    recovering = True  # at start and after a failure: (re)create the group, redo own pending
    cursor = "0-0"
    while True:
        try:
            if recovering:
                await ensure_group(client, stream)
                while entries := await read_entries(client, stream, consumer, batch, "0"):
                    await process_batch(client, ledger, namespace, metrics, entries)
                recovering = False
            cursor, entries = await claim_entries(
                client, stream, consumer, batch, claim_idle_ms, cursor
            )
            await process_batch(client, ledger, namespace, metrics, entries)
            entries = await read_entries(client, stream, consumer, batch, ">", block_ms)
            await process_batch(client, ledger, namespace, metrics, entries)
            await trim_and_measure(client, namespace, metrics)
            backoff = retry_initial_seconds
        except Exception as exc:  # keep copying after any failure; the lag metric shows it
            metrics.ledger_errors.inc()
            log.warning(
                "ledger writer pass failed: %r; retrying in %.1fs", exc, backoff, exc_info=True
            )
            recovering = True
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
