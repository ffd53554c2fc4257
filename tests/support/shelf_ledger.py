"""Outbox entries of the stock beyond the shelf, written in the shared contract's format (the
scripts that emit them are tested on their own), and Redis positions written directly, so the
ledger, the audit and the rebuild are tested on the facts those events state.

A :class:`ShelfStory` numbers one SKU's events (seq) and keeps each position's values, so every
bucket event carries its deltas and the five values after it, as the contract says.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.store.keys import BUCKET_FIELDS, RESERVED
from stocksync.store.outbox import Entry
from stocksync.store.redis_store import RedisStockStore

BUCKETS = ("on_hand", "reserved", "damaged", "quality_control", "in_transit")
_ENTRY_NUMBERS = itertools.count()  # stream ids unique across stories written together


def an_hour_ago_ms() -> int:
    """Where a story starts: recent, so its records are within any retention."""
    return int(time.time() * 1000) - 3_600_000


@dataclass
class ShelfStory:
    """One SKU's outbox entries, in order, with each position's buckets after them."""

    sku: str
    seq: int = 0
    at_ms: int = field(default_factory=an_hour_ago_ms)
    entries: list[Entry] = field(default_factory=list)
    values: dict[str, dict[str, int]] = field(default_factory=dict)

    def event(self, kind: str, loc: str, fields: Mapping[str, str | int]) -> dict[str, str]:
        """Any event, its fields as given (the SKU's next seq, a second later)."""
        self.seq += 1
        self.at_ms += 1_000
        header = {"kind": kind, "sku": self.sku, "loc": loc, "seq": self.seq, "at": self.at_ms}
        entry = {k: str(v) for k, v in {**header, **fields}.items()}
        self.entries.append((f"{self.at_ms}-{next(_ENTRY_NUMBERS)}", entry))
        return entry

    def position(self, loc: str) -> dict[str, int]:
        return self.values.setdefault(loc, dict.fromkeys(BUCKETS, 0))

    def count(self, loc: str, on_hand: int) -> dict[str, str]:
        """A count (``counted``): on_hand set, its delta recorded."""
        now = self.position(loc)
        delta, now["on_hand"] = on_hand - now["on_hand"], on_hand
        return self.event(
            "counted",
            loc,
            {"count": on_hand, "as_of": self.at_ms + 1_000, "src": "test", "src_id": f"c{loc}"}
            | {
                "d_on_hand": delta,
                "d_reserved": 0,
                "on_hand": on_hand,
                "reserved": now["reserved"],
            },
        )

    def bucket(
        self, kind: str, loc: str, qty: int, deltas: Mapping[str, int], **details: str
    ) -> dict[str, str]:
        """A bucket event: ``deltas`` by bucket name (on_hand, damaged, ...), each nonzero one
        written as ``d_<bucket>``, and all five values after it."""
        now = self.position(loc)
        for bucket, delta in deltas.items():
            now[bucket] += delta
        fields: dict[str, str | int] = {"qty": qty, "d_on_hand": deltas.get("on_hand", 0)}
        fields["d_reserved"] = 0
        fields |= {f"d_{b}": d for b, d in deltas.items() if b != "on_hand" and d}
        fields |= {b: now[b] for b in BUCKETS}
        return self.event(kind, loc, fields | details)

    def supply(self, kind: str, loc: str, qty: int, **details: str) -> dict[str, str]:
        """An incoming supply event (no bucket changes)."""
        return self.event(kind, loc, {"qty": qty, **details})


def record(ledger: SqlLedger, namespace: str, *stories: ShelfStory) -> int:
    """Write the stories' entries to the ledger (the ledger copy's path)."""
    return ledger.record_entries({namespace: [e for s in stories for e in s.entries]})


async def put_position(
    store: RedisStockStore, sku: str, loc: str, values: Mapping[str, int], seq: int
) -> None:
    """A Redis position hash as the scripts keep it (a field per bucket, absent when 0), with
    the SKU's seq."""
    key = store.keys.position(sku, loc)
    fields = {BUCKET_FIELDS.get(b, RESERVED): v for b, v in values.items() if v}
    await store.client.delete(key)
    if fields:
        await store.client.hset(key, mapping=fields)
    await store.client.sadd(store.keys.sku_locations(sku), loc)
    await store.client.hset(store.keys.seq, sku, seq)
