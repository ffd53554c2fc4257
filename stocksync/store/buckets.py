"""Placeholder: moves between a position's buckets (issue 17, stock beyond the shelf)."""

from __future__ import annotations

from stocksync.store.routing import Routing


class Buckets(Routing):
    """The store's moves between a position's buckets."""
