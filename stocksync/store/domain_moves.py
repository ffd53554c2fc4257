"""Moving stock between domains, and domains between cluster nodes.

**A location to another domain** (:func:`move_location`, ``stocksync domains move-location``)
is an explicit, offline operation: refused while the location has active holds. Its keys are
in the source domain's slot and must end in the target's, two slots that no one script can
touch together (DESIGN rule 1), so the move is a sequence of steps, each one call of
``move_location.lua`` on one domain, each answering "done" again when re-run:

1. **seal** (source): refused (nothing changed) while a reservation in held, confirmed or
   ready has a line at the location, or a transfer from or to it is on its way (both ends of
   a transfer are in one domain). Otherwise the location's record is set aside in the
   source (``moving:<loc>``, naming the target) and the location leaves ``locations`` and
   GEO: from here every stock change there answers ``unknown_location``, a reserve of a SKU
   with no position there too, and ``PUT /v1/locations`` answers ``domain_moving``.
2. **park** (source, pages of SKUs): each position leaves the source into ``parked:<loc>``
   with a ``position_moved_out`` event (units out of the source's ledger, the source's seq):
   on_hand, damaged, quality_control and its incoming supplies.
   A hold created at a not yet parked position (a process still selling there) stops the
   move with ``active_holds``; re-run it once that hold ended.
3. **import** (target) then **unpark** (source), a page at a time: each parked position is
   written to the target with a ``position_moved_in`` event (units into the target's ledger
   with the *target's* seq, so no ledger sees a seq go back), and then dropped from the park.
   A position already in the target was imported by an earlier run: skipped. The target
   does not know the location yet, so nothing changes those positions in between.
4. **open** (target): the record is written there (a ``location_upserted`` event).
5. the directory routes the location to the target.
6. **close** (source): the set-aside record and the location's empty indexes go.

Every step keeps the stock in exactly one place that a later step reads (the source's
positions, its park, or the target), so a crash anywhere loses nothing: run the command again
and it finds the set-aside record and continues. Other processes cache location -> domain:
a stale route reaches the source, whose answer is ``unknown_location``; the store then
forgets the cached route and retries once in the domain the directory names
(:mod:`stocksync.store.stale_routes`), so API processes need no restart.

**A domain to another cluster node** (:func:`move_domain`) freezes the domain (every script
call on it is refused before it touches anything: ``DomainMoving``, 503 ``domain_moving``),
migrates its slot's keys with the ``meta`` keys last, hands the slot over and unfreezes.
Why ``meta`` last: ``KEYS[1]`` of every call is the domain's ``meta`` key, so while it is
still on the source, calls run on the source and are refused there (frozen); once it moved,
the source answers ASK and the target refuses them too: no call ever runs on a half-moved slot.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.crc import key_slot

from stocksync.store.keys import ANCHOR, Keys

if TYPE_CHECKING:
    from redis.asyncio import RedisCluster
    from redis.asyncio.cluster import ClusterNode

    from stocksync.store.redis_store import RedisStockStore

PAGE = 500  # SKUs per park / import call: each call stays well under a few milliseconds
MIGRATE_BATCH = 100  # keys per MIGRATE
MIGRATE_TIMEOUT_MS = 5_000
FROZEN = "frozen"  # the field of a domain's meta hash that refuses every call (see scripts.py)

Progress = Callable[[str], None]


class MoveRefused(Exception):
    """The move was not done (or not finished); the message says why and what to do."""


def moving_key(keys: Keys, location_id: str) -> str:
    """A sealed location's record in its source domain (``moving_key`` in ``_lib.lua``)."""
    return f"{keys.prefix}moving:{location_id}"


def parked_key(keys: Keys, location_id: str) -> str:
    """Positions parked out of the source domain (``parked_key`` in ``_lib.lua``)."""
    return f"{keys.prefix}parked:{location_id}"


@dataclass(frozen=True)
class LocationMove:
    location_id: str
    source: str
    target: str
    positions: int  # positions the target received in this run
    already_done: bool = False  # the location was already in the target: nothing to do


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


async def _step(store: RedisStockStore, domain: str, *args: str | int) -> list[Any]:
    reply: list[Any] = await store.run("move_location", *args, domain=domain)
    status = str(reply[0])
    if status == "ok":
        return reply
    step, location_id = args[0], args[1]
    detail = reply[1] if len(reply) > 1 else ""
    reasons = {
        "active_holds": (
            f"location {location_id!r} has active holds ({detail}): release, expire or "
            "fulfil them (or move them to another location) first; nothing was changed"
            if step == "seal"
            else f"a hold was created at {location_id!r} on SKU {detail!r} during the move; "
            "stop selling there, end that hold, and run the command again to finish"
        ),
        "unknown_location": f"location {location_id!r} does not exist in domain {domain!r}",
        "moving_elsewhere": f"location {location_id!r} is being moved to domain {detail!r}; "
        "finish that move first",
        "open_transfers": f"location {location_id!r} has {detail} transfer(s) on their way "
        "from or to it: receive or cancel them first; nothing was changed",
        "stock_regressed": f"SKU {detail!r} is frozen (Redis behind the ledger) in domain "
        f"{domain!r}: run `stocksync rebuild` first, then this command again",
        "not_sealed": f"location {location_id!r} is not sealed for this move in {domain!r}",
        "parked": f"{detail} positions of {location_id!r} are still parked; run the command again",
    }
    raise MoveRefused(reasons.get(status, f"unexpected reply to {step}: {reply!r}"))


async def _source_of(store: RedisStockStore, location_id: str, target: str) -> str | None:
    """The domain the location moves out of (one sealed for this move first); None when it
    already is in ``target``."""
    for domain in await store.domains(fresh=True):
        held = await store.client.hget(moving_key(store.keys_of(domain), location_id), "to")
        if held is not None:
            to = _text(held)
            if to != target:
                raise MoveRefused(
                    f"location {location_id!r} is being moved from {domain!r} to {to!r}; "
                    f"finish that move first (stocksync domains move-location {location_id} {to})"
                )
            return domain
    store.forget_location(location_id)
    current = await store.domain_of_location(location_id)
    exists = await store.client.exists(store.keys_of(current).location(location_id))
    if not exists:
        raise MoveRefused(f"location {location_id!r} does not exist")
    return None if current == target else current


async def _skus_at(store: RedisStockStore, domain: str, location_id: str) -> list[str]:
    """The SKUs with a position at the location in the domain (a SCAN: an offline tool)."""
    head = store.keys_of(domain).position("", location_id)
    found = []
    async for key in store.client.scan_iter(match=_glob_escape(head) + "*", count=1_000):
        found.append(_text(key)[len(head) :])
    return sorted(set(found))


async def move_location(
    store: RedisStockStore, location_id: str, target: str, progress: Progress | None = None
) -> LocationMove:
    """Move a location and its positions to domain ``target`` (see the module's docstring for
    the steps); re-run it after a crash to finish. Raises :class:`MoveRefused`."""
    say = progress or (lambda _: None)
    store.keys_of(target)  # validates the name before anything is written
    source = await _source_of(store, location_id, target)
    if source is None:
        return LocationMove(location_id, target, target, 0, already_done=True)
    src = store.keys_of(source)
    await _step(store, source, "seal", location_id, target)
    say(f"sealed {location_id} in {source}")

    while skus := await _skus_at(store, source, location_id):
        for start in range(0, len(skus), PAGE):
            page = skus[start : start + PAGE]
            await _step(store, source, "park", location_id, target, *page)
        say(f"parked {len(skus)} positions")

    imported = 0
    parked = parked_key(src, location_id)
    while await store.client.hlen(parked):
        rows: list[list[str]] = []
        async for sku, value in store.client.hscan_iter(parked, count=PAGE):
            rows.append([str(sku), str(value)])
            if len(rows) == PAGE:
                break
        reply = await _step(store, target, "import", location_id, source, json.dumps(rows))
        imported += int(reply[1])
        await _step(store, source, "unpark", location_id, *(sku for sku, _ in rows))
    say(f"imported {imported} positions into {target}")

    record = await store.client.hgetall(moving_key(src, location_id))
    fields = [str(v) for k, val in record.items() if k != "to" for v in (k, val)]
    await _step(store, target, "open", location_id, source, *fields)
    await store.client.hset(store.directory.location_domains, location_id, target)
    await store.client.sadd(store.directory.domains, target)
    store.forget_location(location_id)
    await _step(store, source, "close", location_id)
    say(f"{location_id} is in {target}")
    return LocationMove(location_id, source, target, imported)


# -- a domain between cluster nodes ------------------------------------------------------


async def freeze(store: RedisStockStore, domain: str) -> None:
    """Refuse every script call on the domain from now on (503 ``domain_moving``)."""
    # The value only tells an operator since when (this host's clock); the field is the freeze.
    await store.client.hset(store.keys_of(domain).anchor, FROZEN, str(int(time.time() * 1000)))


async def unfreeze(store: RedisStockStore, domain: str) -> None:
    """Accept calls on the domain again."""
    await store.client.hdel(store.keys_of(domain).anchor, FROZEN)


async def is_frozen(store: RedisStockStore, domain: str) -> bool:
    return bool(await store.client.hexists(store.keys_of(domain).anchor, FROZEN))


def domain_slot(store: RedisStockStore, domain: str) -> int:
    """The Redis Cluster hash slot of a domain (of its anchor key, like every key of it)."""
    return int(key_slot(store.keys_of(domain).anchor.encode()))


def node_name(node: ClusterNode) -> str:
    return f"{node.host}:{node.port}"


@dataclass(frozen=True)
class DomainMove:
    domain: str
    slot: int
    source: str
    target: str
    keys: int  # keys migrated by this run
    frozen_domains: tuple[str, ...]  # every domain of the namespace in the slot


async def move_domain(
    cluster: RedisCluster,
    store: RedisStockStore,
    domain: str,
    target: str,
    *,
    batch: int = MIGRATE_BATCH,
    timeout_ms: int = MIGRATE_TIMEOUT_MS,
    progress: Progress | None = None,
) -> DomainMove:
    """Move a domain's slot to the primary ``target`` (``host:port``) of ``cluster``.

    Freeze, ``CLUSTER SETSLOT IMPORTING`` on the target and ``MIGRATING`` on the source,
    ``MIGRATE … KEYS`` in batches with the ``meta`` keys last, ``SETSLOT NODE`` on every
    primary (the target first), unfreeze on the new owner. Every domain of the namespace
    that shares the slot is frozen with it (a slot holds every key that hashes to it). A
    re-run after a crash finishes the move (MIGRATE … REPLACE: a frozen key is the same on
    both sides). Other namespaces sharing the cluster must not share the slot.
    """
    say = progress or (lambda _: None)
    slot = domain_slot(store, domain)
    host, _, port = target.rpartition(":")
    goal = cluster.get_node(host=host, port=int(port))
    if goal is None or goal.server_type != "primary":
        raise MoveRefused(f"{target} is not a primary of the cluster")
    source = cluster.get_node_from_key(store.keys_of(domain).anchor)
    if source is None:
        raise MoveRefused(f"no node of the cluster serves slot {slot}")
    together = tuple(d for d in await store.domains(fresh=True) if domain_slot(store, d) == slot)
    together = tuple(sorted({domain, *together}))
    if source.name == goal.name:
        for d in together:
            await unfreeze(store, d)
        return DomainMove(domain, slot, node_name(source), target, 0, together)

    for d in together:
        await freeze(store, d)
    if int(key_slot(store.directory.anchor.encode())) == slot:
        await cluster.hset(store.directory.anchor, FROZEN, "1")
    say(f"froze {', '.join(together)} (slot {slot})")
    source_id = _text(await cluster.cluster_myid(source))
    goal_id = _text(await cluster.cluster_myid(goal))
    await _setslot(cluster, goal, slot, "IMPORTING", source_id)
    await _setslot(cluster, source, slot, "MIGRATING", goal_id)

    moved = 0
    anchors: list[str] = []
    while True:
        found = await cluster.execute_command(
            "CLUSTER", "GETKEYSINSLOT", slot, batch + len(anchors) + 1, target_nodes=source
        )
        keys = [str(k) for k in found]
        anchors = [k for k in keys if _is_anchor(k)]
        rest = [k for k in keys if not _is_anchor(k)]
        if not rest:
            break
        await _migrate(cluster, source, goal, rest, timeout_ms)
        moved += len(rest)
        say(f"migrated {moved} keys")
    if anchors:  # last: see the module's docstring
        await _migrate(cluster, source, goal, anchors, timeout_ms)
        moved += len(anchors)

    # The target first, so the slot never has no owner that accepts it; then the source (it
    # stops answering ASK and answers MOVED), then every other primary.
    primaries = [goal, source] + [
        n for n in cluster.get_primaries() if n.name not in (goal.name, source.name)
    ]
    for node in primaries:
        await _setslot(cluster, node, slot, "NODE", goal_id)
    await cluster.nodes_manager.initialize()
    for d in together:
        await unfreeze(store, d)
    if int(key_slot(store.directory.anchor.encode())) == slot:
        await cluster.hdel(store.directory.anchor, FROZEN)
    say(f"slot {slot} is on {target}; unfrozen")
    return DomainMove(domain, slot, node_name(source), target, moved, together)


def _is_anchor(key: str) -> bool:
    return key.startswith("ss:{") and key.endswith("}:" + ANCHOR)


async def _migrate(
    cluster: RedisCluster, source: ClusterNode, goal: ClusterNode, keys: list[str], wait_ms: int
) -> None:
    await cluster.execute_command(
        "MIGRATE",
        goal.host,
        goal.port,
        "",
        0,
        wait_ms,
        "REPLACE",
        "KEYS",
        *keys,
        target_nodes=source,
    )


async def _setslot(
    cluster: RedisCluster, node: ClusterNode, slot: int, state: str, node_id: str
) -> None:
    await cluster.execute_command("CLUSTER", "SETSLOT", slot, state, node_id, target_nodes=node)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
