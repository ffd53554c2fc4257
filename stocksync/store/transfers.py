"""Placeholder: the store's transfers (issue 17, stock beyond the shelf)."""

from __future__ import annotations

from stocksync.store.routing import Routing


class Transfers(Routing):
    """The store's transfers."""
