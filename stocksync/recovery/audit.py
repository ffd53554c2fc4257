"""Audit: compare Redis with the fold of the ledger for every position.

Per stock domain: a domain's positions are compared with the ledger rows of its ledger
namespace (each domain has its own per-SKU seqs), and each domain's summary is kept in the
domain (``last_audit``); `stocksync status` shows each and their sum.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields
from struct import Struct
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from stocksync.domain.model import DEFAULT_DOMAIN
from stocksync.ledger.queries import AUDITED, NOTHING_BEYOND, FoldedSku, folded_skus
from stocksync.metrics import Metrics
from stocksync.recovery.lease import Lease, lease_seconds, run_under_lease
from stocksync.store.keys import Keys
from stocksync.store.redis_store import RedisStockStore

log = logging.getLogger(__name__)

AUDIT_PAGE = 500  # positions per audit_read call (~2 µs of Redis time each: a call ≲ 1 ms)
SCAN_COUNT = 1_500  # keys per audit_scan step (~1 µs each, keys only: a step ≲ 2 ms)
READERS = 2  # audit_read calls in flight: Redis reads one page while a reply travels
STEPS_PER_LOOKUP = 4  # SCAN steps looked up together
AHEAD = 4  # pages a stage may run ahead of the next (bounds memory)
SUSPECTS_MAX = 1_000  # positions only Redis has, judged together (bounds their list)
BUCKETS = 1 << 16  # of _LedgerKeys


@dataclass(frozen=True)
class Drift:
    """A position whose Redis numbers differ from the ledger's sums, bucket by bucket."""

    sku: str
    location_id: str
    redis_on_hand: int
    ledger_on_hand: int
    redis_reserved: int
    ledger_reserved: int
    redis_damaged: int = 0
    ledger_damaged: int = 0
    redis_quality_control: int = 0
    ledger_quality_control: int = 0
    redis_in_transit: int = 0
    ledger_in_transit: int = 0

    @classmethod
    def of(cls, sku: str, location_id: str, redis: Sequence[int], ledger: Sequence[int]) -> Drift:
        """From both sides' numbers in :data:`AUDITED` order."""
        pairs = (v for pair in zip(redis, ledger, strict=True) for v in pair)
        return cls(sku, location_id, *pairs)

    def pairs(self) -> dict[str, tuple[int, int]]:
        """(redis, ledger) of every audited bucket, in :data:`AUDITED` order."""
        return {b: (getattr(self, "redis_" + b), getattr(self, "ledger_" + b)) for b in AUDITED}

    @property
    def buckets(self) -> dict[str, tuple[int, int]]:
        """(redis, ledger) of the buckets that differ."""
        return {b: (r, led) for b, (r, led) in self.pairs().items() if r != led}

    @property
    def units(self) -> int:
        return sum(abs(r - led) for r, led in self.pairs().values())


@dataclass(frozen=True)
class AuditReport:
    positions: int  # compared
    in_flight: int  # skipped: Redis has events the ledger has not written yet
    drifts: list[Drift]

    @property
    def drift_units(self) -> int:
        return sum(d.units for d in self.drifts)


@dataclass
class _Tally:
    positions: int = 0
    in_flight: int = 0
    drifts: list[Drift] = field(default_factory=list)


@dataclass(frozen=True)
class _Domain:
    """The store's calls and key names of the one domain an audit looks at."""

    store: RedisStockStore
    name: str

    async def run(self, script: str, *args: str | int) -> Any:
        return await self.store.run(script, *args, domain=self.name)

    @property
    def keys(self) -> Keys:
        return self.store.keys_of(self.name)


async def audit(
    store: RedisStockStore,
    engine: Engine,
    namespace: str,
    page: int = AUDIT_PAGE,
    scan_count: int = SCAN_COUNT,
    *,
    domain: str = DEFAULT_DOMAIN,
) -> AuditReport:
    """Every position whose SKU the ledger has caught up with, compared unit by unit.

    Two streamed passes; memory is a few pages plus 8 bytes per ledger position. First the
    ledger's fold, a row per SKU, drives reads of the same positions in Redis (``audit_read``,
    a page of ``page`` positions per call); the next SQL page is fetched in a thread and the
    next call is in Redis while a reply is compared, so the database, Redis and this process
    work at once. A SKU counts as settled when Redis's seq equals N and the ledger (read
    first) holds every seq 1..N; its positions are compared, the others are in flight. Then a
    SCAN of Redis's position keys (``audit_scan``, keys only) finds the positions the ledger
    had no row for; those few are read again, ledger first, and judged by the same rule.
    """
    tally = _Tally()
    target = _Domain(store, domain)
    known = _LedgerKeys(target)
    await _compare_ledger(target, engine, namespace, page, known, tally)
    await _find_redis_only(target, engine, namespace, page, scan_count, known, tally)
    return AuditReport(tally.positions, tally.in_flight, tally.drifts)


async def audit_domains(
    store: RedisStockStore, engine: Engine, page: int = AUDIT_PAGE, scan_count: int = SCAN_COUNT
) -> dict[str, AuditReport]:
    """:func:`audit` of every domain, each against its ledger namespace."""
    reports = {}
    for domain in await store.domains(fresh=True):
        namespace = store.keys_of(domain).ledger_namespace
        reports[domain] = await audit(store, engine, namespace, page, scan_count, domain=domain)
    return reports


def merged(reports: Mapping[str, AuditReport]) -> AuditReport:
    """Every domain's report as one (positions and drifts added up)."""
    return AuditReport(
        sum(r.positions for r in reports.values()),
        sum(r.in_flight for r in reports.values()),
        [d for r in reports.values() for d in r.drifts],
    )


async def _compare_ledger(
    store: _Domain,
    engine: Engine,
    namespace: str,
    page: int,
    known: _LedgerKeys,
    tally: _Tally,
) -> None:
    """The first pass: SQL pages (fetched in a thread, one ahead) -> audit_read calls
    (READERS tasks, each a SQL page at a time) -> compare."""
    sql_in, sql_pages = anyio.create_memory_object_stream[list[FoldedSku]](1)
    replies_in, replies = anyio.create_memory_object_stream[
        tuple[list[FoldedSku], list[FoldedSku]]
    ](AHEAD)
    async with _stages() as tg, replies:
        tg.start_soon(_stream_ledger, engine, namespace, known, sql_in)
        async with sql_pages, replies_in:
            for _ in range(READERS):
                tg.start_soon(_read_redis, store, page, sql_pages.clone(), replies_in.clone())
        async for rows, reply in replies:
            _compare(rows, reply, tally)


async def _stream_ledger(
    engine: Engine, namespace: str, known: _LedgerKeys, send: ObjectSendStream[list[FoldedSku]]
) -> None:
    """The fold in SQL pages, each fetched (and its positions noted in ``known``) in a thread."""
    sql_pages = folded_skus(engine, namespace)

    def fetch() -> list[FoldedSku] | None:
        rows = next(sql_pages, None)
        for f in rows or ():
            known.add(f)
        return rows

    async with send:
        try:
            while (rows := await anyio.to_thread.run_sync(fetch)) is not None:
                await send.send(rows)
        finally:
            with anyio.CancelScope(shield=True):  # give the connection back, also when cancelled
                await anyio.to_thread.run_sync(sql_pages.close)


async def _read_redis(
    store: _Domain,
    page: int,
    sql_pages: ObjectReceiveStream[list[FoldedSku]],
    send: ObjectSendStream[tuple[list[FoldedSku], list[FoldedSku]]],
) -> None:
    """audit_read calls of ``page`` positions, a SQL page after another."""
    async with sql_pages, send:
        async for rows in sql_pages:
            for chunk in _paged(rows, page):
                await send.send((chunk, await _read(store, chunk)))


async def _read(store: _Domain, rows: list[FoldedSku]) -> list[FoldedSku]:
    """audit_read of ``rows``: the same positions as Redis has them, each SKU's
    ``complete_seq`` its seq in Redis."""
    reply: list[Any] = await store.run(
        "audit_read", *(v for f in rows for v in (f.sku, f.locations))
    )
    out, i = [], 0
    for f in rows:
        end = i + 1 + 2 * len(f.on_hand)
        on_hand, reserved = reply[i + 1 : end : 2], reply[i + 2 : end : 2]
        out.append(FoldedSku(f.sku, f.locations, on_hand, reserved, reply[end], reply[i]))
        i = end + 1
    return out


def _paged(rows: list[FoldedSku], page: int) -> Iterator[list[FoldedSku]]:
    """``rows`` in pages of at most ``page`` positions (a SKU with more is split)."""
    chunk: list[FoldedSku] = []
    size = 0
    for f in rows:
        for part in _split(f, page):
            n = len(part.on_hand)
            if size + n > page and chunk:
                yield chunk
                chunk, size = [], 0
            chunk.append(part)
            size += n
    if chunk:
        yield chunk


def _split(f: FoldedSku, page: int) -> list[FoldedSku]:
    if len(f.on_hand) <= page:
        return [f]
    locations = f.locations.split("\n")
    beyond = f.beyond.splitlines(keepends=True)
    parts = []
    for i in range(0, len(locations), page):
        part = set(locations[i : i + page])
        parts.append(
            FoldedSku(
                f.sku,
                "\n".join(locations[i : i + page]),
                f.on_hand[i : i + page],
                f.reserved[i : i + page],
                "".join(line for line in beyond if line.partition(":")[0] in part),
                f.complete_seq,
            )
        )
    return parts


def _compare(rows: list[FoldedSku], reply: list[FoldedSku], tally: _Tally) -> None:
    """An audit_read reply against the ledger's sums, a SKU's lists at a time (positions are
    looked at one by one only when the lists differ)."""
    for f, redis in zip(rows, reply, strict=True):
        n = len(f.on_hand)
        if redis.complete_seq != f.complete_seq:
            tally.in_flight += n
            continue
        tally.positions += n
        if (redis.on_hand, redis.reserved, redis.beyond) != (f.on_hand, f.reserved, f.beyond):
            ours = redis.positions()
            for loc, ledger in f.positions().items():
                if ours[loc] != ledger:
                    tally.drifts.append(Drift.of(f.sku, loc, ours[loc], ledger))


_PACK = Struct("<q").pack


class _LedgerKeys:
    """The ledger's positions as the hash() of their Redis keys (stable within a process),
    8 bytes each, in byte strings bucketed by SKU: exact membership (bar a 64-bit collision,
    which could only hide a position only Redis has) with no object per position and no sort.
    """

    def __init__(self, store: _Domain) -> None:
        self.marker = store.keys.positions_pattern[:-1]  # marker + '<location>:<sku>'
        self._buckets: list[bytearray | None] = [None] * BUCKETS

    def add(self, f: FoldedSku) -> None:
        marker, tail = self.marker, ":" + f.sku
        hashes = array("q", [hash(marker + loc + tail) for loc in f.locations.split("\n")])
        k = hash(f.sku) % BUCKETS
        bucket = self._buckets[k]
        if bucket is None:
            self._buckets[k] = bytearray(hashes)
        else:
            bucket += hashes

    def missing(self, keys: list[str]) -> list[tuple[str, str]]:
        """(sku, location id) of those of ``keys`` (position keys) not added."""
        out = []
        buckets = self._buckets
        for key in keys:
            bucket = buckets[hash(key.rpartition(":")[2]) % BUCKETS]
            if bucket is not None:
                needle = _PACK(hash(key))
                at = bucket.find(needle)
                while at > 0 and at % 8:  # a match across two hashes: look further
                    at = bucket.find(needle, at + 1)
                if at >= 0:
                    continue
            loc, _, sku = key[len(self.marker) :].partition(":")
            out.append((sku, loc))
        return out


async def _find_redis_only(
    store: _Domain,
    engine: Engine,
    namespace: str,
    page: int,
    scan_count: int,
    known: _LedgerKeys,
    tally: _Tally,
) -> None:
    """The second pass: Redis's position keys not in ``known``, judged SUSPECTS_MAX at a
    time; the next SCAN step runs while a step's keys are looked up."""
    steps_in, steps = anyio.create_memory_object_stream[list[str]](AHEAD)
    found: list[tuple[str, str]] = []
    async with _stages() as tg, steps:
        tg.start_soon(_scan, store, scan_count, steps_in)
        async for keys in steps:
            found += await anyio.to_thread.run_sync(known.missing, keys)
            while len(found) >= SUSPECTS_MAX:
                await _judge_redis_only(store, engine, namespace, found[:SUSPECTS_MAX], page, tally)
                del found[:SUSPECTS_MAX]
    if found:
        await _judge_redis_only(store, engine, namespace, found, page, tally)


@asynccontextmanager
async def _stages() -> AsyncIterator[TaskGroup]:
    """A task group for the stages of a pass whose failure raises as the failing stage's own
    error (callers catch RedisError and SQLAlchemyError), not as an exception group."""
    try:
        async with anyio.create_task_group() as tg:
            yield tg
    except BaseExceptionGroup as group:
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from group


async def _scan(store: _Domain, scan_count: int, send: ObjectSendStream[list[str]]) -> None:
    """Every position key, a SCAN step per call (a key may come twice: SCAN's rule)."""
    async with send:
        cursor, found = "0", []
        while True:
            cursor, keys = (str(v) for v in await store.run("audit_scan", cursor, scan_count))
            if keys:
                found += keys.split("\n")
            # Handed on a few steps at a time: fewer hand-overs to the thread that looks them up.
            if len(found) >= STEPS_PER_LOOKUP * scan_count or (cursor == "0" and found):
                await send.send(found)
                found = []
            if cursor == "0":
                return


async def _judge_redis_only(
    store: _Domain,
    engine: Engine,
    namespace: str,
    positions: list[tuple[str, str]],
    page: int,
    tally: _Tally,
) -> None:
    """(sku, location id) of positions the ledger had no row for in the first pass: their
    SKUs' fold read again (first), then Redis; a settled SKU's position drifts by its units,
    or by the difference when the ledger has written the position since."""
    by_sku: dict[str, list[str]] = {}
    for sku, loc in dict.fromkeys(positions):  # a SCAN may return a key twice
        by_sku.setdefault(sku, []).append(loc)

    def fold() -> dict[str, FoldedSku]:
        return {f.sku: f for rows in folded_skus(engine, namespace, sorted(by_sku)) for f in rows}

    ledger = await anyio.to_thread.run_sync(fold)
    asked = [
        FoldedSku(sku, "\n".join(locs), [0] * len(locs), [0] * len(locs), "", -1)
        for sku, locs in by_sku.items()
    ]
    nothing = (0, 0, *NOTHING_BEYOND)
    for chunk in _paged(asked, page):
        for redis in await _read(store, chunk):
            n = len(redis.on_hand)
            led = ledger.get(redis.sku)
            if led is None or redis.complete_seq != led.complete_seq:
                tally.in_flight += n
                continue
            sums = led.positions()
            tally.positions += n
            for loc, ours in redis.positions().items():
                theirs = sums.get(loc, nothing)
                if ours != theirs:
                    tally.drifts.append(Drift.of(redis.sku, loc, ours, theirs))


@dataclass(frozen=True)
class AuditSummary:
    """What the newest audit found, kept in Redis for `stocksync status`."""

    at_ms: int  # Redis server time when it was recorded
    positions: int
    in_flight: int
    drifting: int  # positions
    units: int


async def record_audit(
    store: RedisStockStore, report: AuditReport, domain: str = DEFAULT_DOMAIN
) -> AuditSummary:
    """Keep ``report``'s summary (of ``domain``): the workers audit in a process of their own,
    and an operator's `stocksync status` reads it from here."""
    seconds, micros = await store.client.time()
    summary = AuditSummary(
        at_ms=int(seconds) * 1000 + int(micros) // 1000,
        positions=report.positions,
        in_flight=report.in_flight,
        drifting=len(report.drifts),
        units=report.drift_units,
    )
    last = store.keys_of(domain).last_audit
    await store.client.hset(last, mapping=asdict(summary))  # type: ignore[arg-type]
    return summary


async def last_audit(store: RedisStockStore, domain: str = DEFAULT_DOMAIN) -> AuditSummary | None:
    """The newest recorded audit of ``domain``, if any ran."""
    raw: dict[str, str] = await store.client.hgetall(store.keys_of(domain).last_audit)  # type: ignore[assignment]
    if not raw:
        return None
    return AuditSummary(**{f.name: int(raw.get(f.name, 0)) for f in fields(AuditSummary)})


async def last_audits(store: RedisStockStore) -> dict[str, AuditSummary]:
    """The newest recorded audit of every domain that has one."""
    found = {}
    for domain in await store.domains():
        summary = await last_audit(store, domain)
        if summary is not None:
            found[domain] = summary
    return found


def summed(summaries: Mapping[str, AuditSummary]) -> AuditSummary | None:
    """Every domain's newest audit added up (``at_ms``: the oldest of them); None if none."""
    if not summaries:
        return None
    values = summaries.values()
    return AuditSummary(
        at_ms=min(s.at_ms for s in values),
        positions=sum(s.positions for s in values),
        in_flight=sum(s.in_flight for s in values),
        drifting=sum(s.drifting for s in values),
        units=sum(s.units for s in values),
    )


async def run_audits(
    store: RedisStockStore,
    engine: Engine,
    namespace: str,
    metrics: Metrics,
    interval: float,
    *,
    lease: Lease | None = None,
    on_report: Callable[[AuditReport], None] | None = None,
) -> None:
    """Audit every domain periodically and export the drift over all of them
    (``stocksync_ledger_drift_units``); with a ``lease``, only while this process holds it
    (one audit per deployment and interval). ``namespace`` is the deployment's; each domain
    is compared with its own ledger namespace."""

    async def once() -> None:
        try:
            reports = await audit_domains(store, engine)
            for domain, domain_report in reports.items():
                await record_audit(store, domain_report, domain)
        except (RedisError, SQLAlchemyError) as exc:
            log.warning("audit failed: %s", exc)
            return
        report = merged(reports)
        metrics.ledger_drift_units.set(report.drift_units)
        metrics.ledger_drift_positions.set(len(report.drifts))
        if report.drifts:
            log.error(
                "ledger drift: %d position(s), %d unit(s)", len(report.drifts), report.drift_units
            )
        if on_report is not None:
            on_report(report)

    await run_under_lease(lease, interval, once)


def audit_lease(store: RedisStockStore, interval: float) -> Lease:
    """The lease the workers' audit loops share (one per namespace)."""
    return Lease(store.client, store.keys.lease("audit"), lease_seconds(interval))
