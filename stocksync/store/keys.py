"""Every Redis key name stocksync uses, in one place.

All keys of a namespace share the hash tag ``{namespace}`` so that each script, which may touch
any position and reservation of the namespace, runs within one Redis Cluster slot. The Lua
scripts receive :func:`prefix` as ``KEYS[1]`` and build the same names (see ``lua/_lib.lua``).
"""

from __future__ import annotations

import re

NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def prefix(namespace: str) -> str:
    if not NAMESPACE_PATTERN.match(namespace):
        raise ValueError(f"invalid namespace {namespace!r}")
    return f"ss:{{{namespace}}}:"


class Keys:
    """Key names of one namespace, mirroring the helpers at the top of ``lua/_lib.lua``."""

    def __init__(self, namespace: str) -> None:
        self.prefix = prefix(namespace)

    def position(self, sku: str, location_id: str) -> str:
        return f"{self.prefix}pos:{location_id}:{sku}"

    def reservation(self, reservation_id: str) -> str:
        return f"{self.prefix}res:{reservation_id}"

    def location(self, location_id: str) -> str:
        return f"{self.prefix}loc:{location_id}"

    @property
    def locations(self) -> str:
        return f"{self.prefix}locations"

    @property
    def outbox(self) -> str:
        return f"{self.prefix}outbox"

    @property
    def seq(self) -> str:
        return f"{self.prefix}seq"

    @property
    def active(self) -> str:
        return f"{self.prefix}active"

    def holds(self, sku: str, location_id: str) -> str:
        """Active reservations at a position, scored by deadline (+inf: none)."""
        return f"{self.prefix}holds:{location_id}:{sku}"

    @property
    def regressed(self) -> str:
        """SKUs frozen because Redis is behind the ledger."""
        return f"{self.prefix}regressed"

    def sku_locations(self, sku: str) -> str:
        return f"{self.prefix}skulocs:{sku}"
