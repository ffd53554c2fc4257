"""Placeholder: the store's returns (issue 17, stock beyond the shelf)."""

from __future__ import annotations

from stocksync.store.routing import Routing


class Returns(Routing):
    """The store's returns."""
