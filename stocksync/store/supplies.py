"""Placeholder: the store's incoming supply (issue 17, stock beyond the shelf)."""

from __future__ import annotations

from stocksync.store.routing import Routing


class Supplies(Routing):
    """The store's incoming supply."""
