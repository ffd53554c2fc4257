"""What the commands share: a store on the configured (or bundled) Redis, for one job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from stocksync.config import Settings
from stocksync.store.base import acting_as
from stocksync.store.connection import open_store, redis_url
from stocksync.store.redis_store import RedisStockStore

T = TypeVar("T")


def run_with_store(
    settings: Settings, job: Callable[[RedisStockStore], Awaitable[T]], pool_size: int = 4
) -> T:
    """Run ``job`` on a store built from ``settings`` (the bundled Redis started if need be)."""
    with redis_url(settings) as url:

        async def main() -> T:
            async with open_store(settings, url, pool_size=pool_size) as store:
                with acting_as("cli"):  # a job may name itself more precisely inside
                    return await job(store)

        return anyio.run(main)
