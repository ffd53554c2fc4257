"""Availability push: the outbox, coalesced per position, set on Shopify with compare-and-set.

The connector reads the outbox through a consumer group of its own (``connector:{name}``).
A batch of entries is reduced to the set of mapped (SKU, location) positions it touched; their
availability is then read fresh from the store, so fifty changes to one position become one
push of the latest value. Entries are acknowledged only after Shopify accepted the push
(at-least-once; pushes are absolute, so repeating one is harmless).

The group is created at ``$`` on every start, after dropping any group a previous run left,
and a full sync of every mapped position follows: nothing that happened while the connector
was stopped is needed from the stream. On a clean stop the group is destroyed, so a stopped
connector never holds back the ledger copy's trimming (which keeps what any group has not
acknowledged). A killed connector's group does hold it back until the connector starts again.

A Shopify location mapped to a channel pool (``[pools]``) is set to the pool's offered units
(Σ max(0, available - buffer) over its locations): a change at any of the pool's locations
pushes it, read fresh like a location's. The pools are read at start (an unknown pool is a
configuration error: the connector refuses to run) and again at every full sync, which runs
at start and every ``full_sync_interval_seconds``: a pool's buffers are read with its
availability, so a re-configured pool's number is right from the next push, and a changed
set of locations is followed from the next full sync.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping

import anyio

from connectors.framework.metrics import connector_metrics
from connectors.framework.state import ConnectorState
from connectors.shopify.client import SetQuantity, ShopifyClient, ShopifyError
from connectors.shopify.config import ShopifyConfig, ShopifyIdMap
from connectors.shopify.mapping import (
    Level,
    channel_available,
    mapped_levels,
    mapped_pool_levels,
    pools_touched,
    touched,
)
from connectors.shopify.pool_reads import PoolView, UnknownPool, get_pool, pool_available_many
from stocksync.plugins import EngineContext
from stocksync.store.outbox import Entry, Outbox
from stocksync.store.replies import POSITION_ROW, parse_position_row

log = logging.getLogger(__name__)

READ_BATCH = 1000  # outbox entries per read; coalescing makes the pushes far fewer
# SKUs whose positions are read together: their reads share the store's batched calls, and
# stay well under its queue bound (4,096 operations).
READS_PER_ROUND_TRIP = 500
MAX_BACKOFF_SECONDS = 30.0


class StalePush(Exception):
    """Shopify's value kept changing under us for every compare-and-set attempt."""


class AvailabilityPush:
    """Pushes the engine's channel availability of mapped positions to Shopify."""

    def __init__(
        self,
        name: str,
        ctx: EngineContext,
        client: ShopifyClient,
        idmap: ShopifyIdMap,
        config: ShopifyConfig,
    ) -> None:
        self.name = name
        self.ctx = ctx
        self.client = client
        self.config = config
        self.levels = mapped_levels(idmap)
        self.pool_levels = mapped_pool_levels(idmap)  # (sku, pool_id) -> level
        self.pools: dict[str, PoolView] = {}  # read by load_pools
        # levels a read expects per item
        self.levels_hint = max(1, len(idmap.locations) + len(idmap.pools))
        self.outbox = ctx.store.outbox  # the default domain's; `outboxes` has every one read
        self.outboxes: list[Outbox] = [self.outbox]
        self.group = f"connector:{name}"
        self.consumer = f"{name}-{socket.gethostname()}-{os.getpid()}"
        self.metrics = connector_metrics(ctx.registry)
        self.state = ConnectorState(ctx.engine, name)
        self.known: dict[Level, int] = {}  # what we last saw or set on Shopify
        self.pushes = 0  # mutation calls that set something (for tests and benchmarks)
        self._recovering = False

    # -- the consumer group ---------------------------------------------------------------

    async def load_pools(self) -> None:
        """Read every mapped pool's domain and locations; a pool that does not exist is a
        configuration error (:class:`UnknownPool`), not something to push zeros for."""
        wanted = sorted({pool_id for _, pool_id in self.pool_levels})
        found: dict[str, PoolView] = {}
        for pool_id in wanted:
            pool = await get_pool(self.ctx.store, pool_id)
            if pool is None:
                raise UnknownPool(
                    f"the Shopify mapping's [pools] names pool {pool_id!r}, which does not "
                    f"exist: create it (PUT /v1/pools/{pool_id}) or fix the mapping file"
                )
            found[pool_id] = pool
        self.pools = found

    def pool_locations(self) -> dict[str, frozenset[str]]:
        return {pool_id: pool.location_ids for pool_id, pool in self.pools.items()}

    async def domains(self) -> list[str]:
        """The stock domains of the mapped locations and pools (their events are in those
        outboxes)."""
        store = self.ctx.store
        found = {await store.domain_of_location(loc) for _, loc in self.levels}
        found |= {pool.domain for pool in self.pools.values()}  # a pool keeps its domain
        return sorted(found or {self.outbox.domain})

    async def attach(self) -> None:
        """(Re)create the group at ``$`` on the outbox of every domain a mapped location or
        pool is in: a previous run's pending entries are dropped, the full sync that follows
        covers them. Raises :class:`UnknownPool` when a mapped pool does not exist."""
        await self.detach()
        await self.load_pools()
        self.outboxes = [self.ctx.store.outbox_of(d) for d in await self.domains()]
        for outbox in self.outboxes:
            await outbox.create_group(self.group, start="$")

    async def detach(self) -> None:
        for outbox in self.outboxes:
            await outbox.destroy_group(self.group)

    async def _read(self, outbox: Outbox, start: str, block_ms: int | None) -> list[Entry]:
        return await outbox.read_group(
            self.group, self.consumer, start=start, count=READ_BATCH, block_ms=block_ms
        )

    # -- one pass ---------------------------------------------------------------------------

    async def drain_once(self, block_ms: int | None = None) -> int:
        """One batch of each domain's outbox (see :meth:`drain_outbox`); with several domains
        no read blocks (each would hold a connection): when none had anything the pass
        waits ``block_ms`` instead. Returns how many entries were acknowledged."""
        if len(self.outboxes) == 1:
            return await self.drain_outbox(self.outboxes[0], block_ms)
        done = 0
        for outbox in self.outboxes:
            done += await self.drain_outbox(outbox, None)
        if not done and block_ms:
            await anyio.sleep(block_ms / 1000)
        return done

    async def drain_outbox(self, outbox: Outbox, block_ms: int | None = None) -> int:
        """Read one batch (this consumer's pending entries first after a failure), push what
        it touched, acknowledge it; returns how many entries were acknowledged."""
        entries: list[Entry] = []
        if self._recovering:
            entries = await self._read(outbox, "0", None)
            self._recovering = bool(entries)
        if not entries:
            entries = await self._read(outbox, ">", block_ms)
        if not entries:
            return 0
        events = outbox.decode(entries)
        changed = [(e.sku, e.location_id) for e in events]
        keys = touched(changed, self.levels)
        pool_keys = pools_touched(changed, self.pool_levels, self.pool_locations())
        try:
            pushed = keys or pool_keys
            if pushed and await self.push(keys, reference=entries[-1][0], pool_keys=pool_keys):
                # Accepted by Shopify: the batch's changes reached the shop (sink=shopify).
                first = min((e.at_ms for e in events), default=None)
                self.metrics.observe_propagation("shopify", first)
        except ShopifyError as exc:  # refused for good: keep it, with why, and move on
            reason = f"Shopify refused the push: {exc}"
            raw = repr(sorted(keys) + sorted(("pool", *key) for key in pool_keys))
            await anyio.to_thread.run_sync(self.state.dead_letter, "availability_push", reason, raw)
            self.metrics.outcome(self.name, "dead_letter")
        except BaseException:
            self._recovering = True  # re-read our pending entries before anything new
            raise
        await outbox.ack(self.group, [i for i, _ in entries])
        self.metrics.observe_lag(self.name, min((e.at_ms for e in events), default=None))
        return len(entries)

    async def sync_all(self) -> int:
        """Re-read the mapped pools, then push every mapped position and pool whose Shopify
        value differs (read fresh from Shopify)."""
        await self.load_pools()
        return await self.push(
            set(self.levels),
            reference=f"full-{int(time.time() * 1000)}",
            refresh=True,
            pool_keys=set(self.pool_levels),
        )

    # -- pushing ----------------------------------------------------------------------------

    async def targets(
        self, keys: Iterable[tuple[str, str]], pool_keys: Iterable[tuple[str, str]] = ()
    ) -> dict[Level, int]:
        """The engine's channel availability now, per Shopify level: each location's
        positions read in its own stock domain, each pool's offered units (Σ over its
        locations, buffers withheld) in the pool's domain."""
        by_domain: dict[str, dict[str, list[str]]] = {}
        for sku, loc in keys:
            domain = await self.ctx.store.domain_of_location(loc)
            by_domain.setdefault(domain, {}).setdefault(sku, []).append(loc)
        wanted: dict[Level, int] = {}
        for domain, by_sku in sorted(by_domain.items()):
            await self._targets_in(domain, by_sku, wanted)
        skus_of_pool: dict[str, list[str]] = {}
        for sku, pool_id in pool_keys:
            skus_of_pool.setdefault(pool_id, []).append(sku)
        for pool_id, skus in sorted(skus_of_pool.items()):
            available = await pool_available_many(self.ctx.store, self.pools[pool_id], sorted(skus))
            for sku, qty in available.items():
                wanted[self.pool_levels[(sku, pool_id)]] = qty
        return wanted

    async def _targets_in(
        self, domain: str, by_sku: dict[str, list[str]], wanted: dict[Level, int]
    ) -> None:
        items = sorted(by_sku.items())
        for start in range(0, len(items), READS_PER_ROUND_TRIP):  # not one round trip per SKU
            page = items[start : start + READS_PER_ROUND_TRIP]
            replies = await self.ctx.store.run_pipelined(
                [("read_positions", (sku, *sorted(locations))) for sku, locations in page],
                domain=domain,
            )
            for (sku, locations), flat in zip(page, replies, strict=True):
                found = [
                    parse_position_row(sku, flat[i : i + POSITION_ROW])[0]
                    for i in range(0, len(flat), POSITION_ROW)
                ]
                for position in found:
                    wanted[self.levels[(sku, position.location_id)]] = channel_available(position)
                missing = set(locations) - {p.location_id for p in found}
                if missing:  # mapped, but unknown to the engine: never push a made-up zero
                    log.warning("shopify: locations %s unknown to the engine", sorted(missing))

    async def refresh(self, levels: Iterable[Level]) -> None:
        """Re-read Shopify's ``available`` of these levels into ``known``."""
        levels = list(levels)
        current = await self.client.available(
            (level.item_id for level in levels), levels_hint=self.levels_hint
        )
        for level in levels:
            value = current.get((level.item_id, level.location_id))
            if value is None:
                self.known.pop(level, None)
            else:
                self.known[level] = value

    async def push(
        self,
        keys: Iterable[tuple[str, str]],
        reference: str,
        refresh: bool = False,
        pool_keys: Iterable[tuple[str, str]] = (),
    ) -> int:
        """Set Shopify's ``available`` of these positions (sku, location_id) and pools (sku,
        pool_id) to the engine's; returns how many levels were set."""
        wanted = await self.targets(keys, pool_keys)
        unknown = [level for level in wanted if level not in self.known]
        if refresh or unknown:
            await self.refresh(wanted if refresh else unknown)
        unstocked = [level for level in wanted if level not in self.known]
        for level in unstocked:
            log.warning("shopify: %s is not stocked at %s; not pushed", *_ids(level))
            del wanted[level]
        if unstocked:
            self.metrics.outcome(self.name, "failed", len(unstocked))
        changed = {lvl: qty for lvl, qty in wanted.items() if self.known[lvl] != qty}
        if len(changed) < len(wanted):
            self.metrics.outcome(self.name, "duplicate", len(wanted) - len(changed))
        items = sorted(changed.items(), key=lambda kv: _ids(kv[0]))
        size = self.config.batch_size
        for start in range(0, len(items), size):
            await self._set(dict(items[start : start + size]), reference)
        return len(changed)

    async def _set(self, wanted: Mapping[Level, int], reference: str) -> None:
        """Compare-and-set one mutation's worth; re-read and retry while a value is stale."""
        uri = f"gid://stocksync/AvailabilitySync/{reference}"
        pending = dict(wanted)
        for _ in range(self.config.cas_attempts):
            quantities = [
                SetQuantity(lvl.item_id, lvl.location_id, qty, self.known[lvl])
                for lvl, qty in pending.items()
            ]
            errors = await self.client.set_available(quantities, uri)
            if not errors:
                self.pushes += 1
                self.known.update(pending)
                self.metrics.outcome(self.name, "applied", len(pending))
                return
            if not all(e.stale for e in errors):
                raise ShopifyError("; ".join(f"{e.code}: {e.message}" for e in errors))
            self.metrics.outcome(self.name, "retried")
            await self.refresh(pending)  # someone changed Shopify: compare with what is there
            pending = {
                lvl: qty for lvl, qty in pending.items() if self.known.get(lvl) not in (None, qty)
            }
            if not pending:
                return
        raise StalePush(
            f"{len(pending)} level(s) still stale after {self.config.cas_attempts} tries"
        )

    # -- the loop ---------------------------------------------------------------------------

    def _sync_due(self, last_sync: float | None) -> bool:
        if last_sync is None:
            return True
        interval = self.config.full_sync_interval_seconds
        return interval > 0 and time.monotonic() - last_sync >= interval

    async def run(self, initial_backoff: float = 0.5) -> None:
        """Attach, full sync, then push until cancelled, with a full sync again every
        ``full_sync_interval_seconds``; failures back off and retry (their entries stay
        pending). The group is destroyed on the way out. A mapped pool that does not exist
        at start ends the run with :class:`UnknownPool`."""
        await self.attach()
        try:
            last_sync: float | None = None
            backoff = initial_backoff
            while True:
                try:
                    if self._sync_due(last_sync):
                        await self.sync_all()
                        last_sync = time.monotonic()
                    await self.drain_once(self.config.read_block_ms)
                    backoff = initial_backoff
                except Exception as exc:
                    log.warning("shopify push failed: %r; retrying in %.1fs", exc, backoff)
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        finally:
            with anyio.move_on_after(5, shield=True):
                await self.detach()


def _ids(level: Level) -> tuple[str, str]:
    return level.item_id, level.location_id
