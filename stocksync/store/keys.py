"""Every Redis key name stocksync uses, in one place.

A namespace (one deployment) holds many *stock domains* (DESIGN rule 2): a region, a country or
a brand, each a set of locations. All keys of a domain share the hash tag
``{<namespace>:<domain>}`` so that each script, which may touch any position and reservation of
the domain, runs within one Redis Cluster slot, and domains spread over a cluster's primaries.
The Lua scripts receive :attr:`Keys.anchor` (the domain's ``meta`` hash, a real key of the slot)
as ``KEYS[1]`` and build the same names from its prefix with the helpers at the top of
``lua/_lib.lua``; ``tests/store/test_lua_vocabulary.py`` runs those helpers on a real server and
fails when a name differs from the one built here.

The namespace's *directory* (:class:`Directory`, hash tag ``{<namespace>}``, a slot of its own)
says which domain each location and reservation lives in, so a request is routed to its domain.
"""

from __future__ import annotations

import re

from stocksync.domain.model import DEFAULT_DOMAIN
from stocksync.domain.model import DOMAIN_PATTERN as _DOMAIN

NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
DOMAIN_PATTERN = re.compile(_DOMAIN)
# KEYS[1] of every script call: the domain's meta hash (``frozen`` while the domain moves to
# another node, see stocksync.store.domain_moves). A real key, so Redis Cluster routes a call
# during a slot migration by where that key is.
ANCHOR = "meta"

# Fields of a position hash, one letter each and absent when 0 (count_as_of: absent = never
# counted), so that a position is a tiny listpack: a million positions fit in ~120 MB. The Lua
# side names them once too (ON_HAND, RESERVED, SAFETY, COUNT_AS_OF at the top of _lib.lua).
ON_HAND = "o"
RESERVED = "r"
SAFETY = "s"
COUNT_AS_OF = "c"
# Stock beyond the shelf (DESIGN "Vocabulary"): units the position owns but cannot sell now.
# None counts in `available`.
DAMAGED = "d"
QUALITY_CONTROL = "q"  # returned, awaiting inspection
IN_TRANSIT = "t"  # shipped to this location by a transfer, not yet received
POSITION_FIELDS = (ON_HAND, RESERVED, SAFETY, COUNT_AS_OF, DAMAGED, QUALITY_CONTROL, IN_TRANSIT)
# The buckets a unit of a position can be in, by their API names (on_hand is the sellable one).
BUCKET_FIELDS = {
    "on_hand": ON_HAND,
    "damaged": DAMAGED,
    "quality_control": QUALITY_CONTROL,
    "in_transit": IN_TRANSIT,
}
# Older releases spelled them out and wrote zeros; `stocksync migrate-store` rewrites those.
LEGACY_POSITION_FIELDS = ("on_hand", "reserved", "safety", "count_as_of")


def prefix(namespace: str, domain: str = DEFAULT_DOMAIN) -> str:
    """The key prefix of a domain: ``ss:{<namespace>:<domain>}:``."""
    if not NAMESPACE_PATTERN.match(namespace):
        raise ValueError(f"invalid namespace {namespace!r}")
    if not DOMAIN_PATTERN.match(domain):
        raise ValueError(f"invalid stock domain {domain!r}")
    return f"ss:{{{namespace}:{domain}}}:"


def directory_prefix(namespace: str) -> str:
    """The key prefix of a namespace's directory (and of the layout before domains)."""
    if not NAMESPACE_PATTERN.match(namespace):
        raise ValueError(f"invalid namespace {namespace!r}")
    return f"ss:{{{namespace}}}:"


def ledger_namespace(namespace: str, domain: str) -> str:
    """The ledger's name for a domain's events (``stock_movements.namespace``, the part before
    the ``/`` of an event id): the namespace itself for ``default``, so a ledger written before
    domains existed continues, and ``<namespace>:<domain>`` for the others. Each domain has its
    own outbox stream and per-SKU seq, so the ledger keeps them apart like namespaces."""
    return namespace if domain == DEFAULT_DOMAIN else f"{namespace}:{domain}"


def ordered_member(reservation_id: str, created_at_ms: int) -> str:
    """A reservation's member in the ordered indexes (``ordered_member`` in ``_lib.lua``)."""
    return f"{created_at_ms:015d}:{reservation_id}"


class Keys:
    """Key names of one stock domain of a namespace."""

    def __init__(self, namespace: str, domain: str = DEFAULT_DOMAIN) -> None:
        self.namespace = namespace
        self.domain = domain
        self.prefix = prefix(namespace, domain)
        self.anchor = self.prefix + ANCHOR
        self.ledger_namespace = ledger_namespace(namespace, domain)

    # -- per position ----------------------------------------------------------------------

    def position(self, sku: str, location_id: str) -> str:
        """Hash: POSITION_FIELDS (on_hand, reserved, safety, count_as_of, damaged,
        quality_control, in_transit), each absent when 0."""
        return f"{self.prefix}pos:{location_id}:{sku}"

    @property
    def positions_pattern(self) -> str:
        """SCAN pattern of every position key of the namespace (the layout migration)."""
        return f"{self.prefix}pos:*"

    def holds(self, sku: str, location_id: str) -> str:
        """Active reservations at a position, scored by deadline (+inf: none)."""
        return f"{self.prefix}holds:{location_id}:{sku}"

    def deltas(self, sku: str, location_id: str) -> str:
        """Physical deltas of a position by when they occurred (for the as-of rule)."""
        return f"{self.prefix}deltas:{location_id}:{sku}"

    def sku_locations(self, sku: str) -> str:
        """Locations that have a position of the SKU."""
        return f"{self.prefix}skulocs:{sku}"

    def arrivals(self, sku: str, location_id: str) -> str:
        """Hash: units on their way to a position, each with its expected time. Fields
        ``s:<supply_id>`` (incoming supply: a purchase order, an announced delivery) and
        ``t:<transfer_id>`` (a shipped transfer's line, also counted in ``in_transit``); values
        ``<qty>|<expected_at ms, '' = not given>``. Deleted when empty."""
        return f"{self.prefix}arr:{location_id}:{sku}"

    # -- returns and transfers (stock beyond the shelf) ------------------------------------

    def stock_return(self, return_id: str) -> str:
        """Hash: a return (``fp``, ``reservation_id``, ``lines`` JSON
        ``[[sku, location_id, qty, disposition], ...]``, ``created_at``, ``actor``); kept for
        the return retention."""
        return f"{self.prefix}ret:{return_id}"

    def returned_units(self, reservation_id: str) -> str:
        """Hash: SKU -> units of a fulfilled reservation returned so far (across partial
        returns), and ``:ids`` (comma-separated return ids, oldest first; a name no SKU can
        have); kept for the return retention after the newest return."""
        return f"{self.prefix}returned:{reservation_id}"

    def transfer(self, transfer_id: str) -> str:
        """Hash: a transfer (``fp``, ``from``, ``to``, ``state`` shipped|received|cancelled,
        ``lines`` JSON ``[[sku, shipped, received], ...]``, ``expected_at`` ('' = none),
        ``created_at``, ``updated_at``); terminal ones kept for the retention."""
        return f"{self.prefix}xfer:{transfer_id}"

    def quality_control_positions(self, location_id: str) -> str:
        """Sorted set: SKUs with units in quality_control at a location, scored by when units
        entered it (ms): the store's inspection queue, oldest first. Kept by ``emit`` in
        ``_lib.lua`` from the ``quality_control`` after-value every bucket event carries."""
        return f"{self.prefix}qcloc:{location_id}"

    def location_transfers(self, location_id: str) -> str:
        """Sorted set: ids of the transfers from or to a location, scored by created_at ms
        (entries older than the retention are trimmed by the transfer scripts)."""
        return f"{self.prefix}xferloc:{location_id}"

    # -- locations -------------------------------------------------------------------------

    def location(self, location_id: str) -> str:
        return f"{self.prefix}loc:{location_id}"

    @property
    def locations(self) -> str:
        return f"{self.prefix}locations"

    @property
    def geo(self) -> str:
        """Locations with coordinates (GEOADD by upsert_location.lua)."""
        return f"{self.prefix}geo"

    # -- channel pools (online stock) --------------------------------------------------------

    def pool(self, pool_id: str) -> str:
        """Hash: a pool's ``name``, ``channels`` (JSON list), ``strategy``, ``locs`` (JSON
        ``[[location_id, priority, buffer], ...]`` by priority, then id) and ``updated_at``."""
        return f"{self.prefix}pool:{pool_id}"

    @property
    def pools(self) -> str:
        """Set: the domain's pool ids."""
        return f"{self.prefix}pools"

    # -- reservations ----------------------------------------------------------------------

    def reservation(self, reservation_id: str) -> str:
        return f"{self.prefix}res:{reservation_id}"

    @property
    def active(self) -> str:
        """Active reservations scored by deadline (+inf: none): the reaper's index."""
        return f"{self.prefix}active"

    # The indexes of active reservations below are ordered: scored by deadline (+inf: none),
    # each member ``<created_at, 15 digits>:<reservation id>``, so a read in index order is
    # by deadline, then created_at, then id, and takes a LIMIT.

    def location_reservations(self, location_id: str, state: str) -> str:
        """Active reservations in a state with a line at a location (ordered; pick lists)."""
        return f"{self.prefix}locstate:{location_id}:{state}"

    def hold_ages(self, location_id: str) -> str:
        """Active reservations per SKU at a location, all scored 0, members
        ``<sku>:<created_at, 15 digits>:<id>``: a position's holds newest first, by lex range."""
        return f"{self.prefix}ages:{location_id}"

    def key_reservations(self, key_id: str) -> str:
        """Active reservations made with an API key (ordered)."""
        return f"{self.prefix}keyres:{key_id}"

    def held_units(self, key_id: str, channel: str) -> str:
        """Hash: location -> units an API key holds there on a channel capped in units."""
        return f"{self.prefix}heldunits:{key_id}:{channel}"

    def customer_reservations(self, customer_ref: str) -> str:
        """Active reservations of a customer_ref (ordered)."""
        return f"{self.prefix}custres:{customer_ref}"

    @property
    def at_risk(self) -> str:
        """Active reservations flagged at risk by a till sale or a count (ordered)."""
        return f"{self.prefix}risk"

    def location_at_risk(self, location_id: str) -> str:
        """Active reservations flagged at risk with a line at a location (ordered)."""
        return f"{self.prefix}locrisk:{location_id}"

    def hold_code(self, code: str) -> str:
        """Hold code (stored form) -> reservation id."""
        return f"{self.prefix}code:{code}"

    # -- changes and their record ----------------------------------------------------------

    def idempotency(self, source: str, source_event_id: str) -> str:
        """The result of a stock change, by (source, source_event_id)."""
        return f"{self.prefix}idem:{source}:{source_event_id}"

    @property
    def outbox(self) -> str:
        """Stream of every change, copied into the ledger (DESIGN rule 5)."""
        return f"{self.prefix}outbox"

    @property
    def seq(self) -> str:
        """Hash: SKU -> the seq of its newest event."""
        return f"{self.prefix}seq"

    @property
    def regressed(self) -> str:
        """SKUs frozen because Redis is behind the ledger."""
        return f"{self.prefix}regressed"

    @property
    def layout(self) -> str:
        """The store layout's version, set once every key has it (`stocksync migrate-store`)."""
        return f"{self.prefix}layout"

    @property
    def last_audit(self) -> str:
        """Hash: the newest audit's summary (at_ms, positions, in_flight, drifting, units),
        for `stocksync status`; written from Python, no script reads it."""
        return f"{self.prefix}audit:last"

    def lease(self, job: str) -> str:
        """A periodic job's lease (token, PX): the one process of a deployment that runs it;
        written from Python (``stocksync.recovery.lease``), no script reads it."""
        return f"{self.prefix}lease:{job}"


class Directory:
    """Key names of a namespace's directory: which domain holds each location and reservation.

    In its own slot (hash tag ``{<namespace>}``). Written by scripts of the function library
    like a domain (``KEYS[1]`` = :attr:`anchor`; ``claim_reservation.lua``) and by
    ``upsert_location``'s caller; read with plain commands and cached in each process.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.prefix = directory_prefix(namespace)
        self.anchor = self.prefix + ANCHOR

    @property
    def domains(self) -> str:
        """Set: every domain of the namespace."""
        return f"{self.prefix}domains"

    @property
    def location_domains(self) -> str:
        """Hash: location id -> its domain."""
        return f"{self.prefix}locdomain"

    @property
    def pool_domains(self) -> str:
        """Hash: pool id -> its domain."""
        return f"{self.prefix}pooldomain"

    @property
    def reservation_domains(self) -> str:
        """Hash: reservation id -> ``<domain>|<claimed at, ms>`` (the first reserve claims it;
        swept once the reservation is gone from its domain)."""
        return f"{self.prefix}resdomain"

    @property
    def layout(self) -> str:
        """Set once the namespace's keys are in domains (see stocksync.store.migrate)."""
        return f"{self.prefix}domains-layout"

    def is_directory_key(self, key: str) -> bool:
        """Whether ``key`` is one of the directory's own (not a key of the layout before
        domains, which shared its prefix)."""
        rest = key.removeprefix(self.prefix)
        return rest in {
            "domains",
            "locdomain",
            "resdomain",
            "pooldomain",
            "domains-layout",
            ANCHOR,
        } or (rest.startswith("lease:"))

    def lease(self, job: str) -> str:
        """A namespace-wide periodic job's lease (see :meth:`Keys.lease`)."""
        return f"{self.prefix}lease:{job}"
