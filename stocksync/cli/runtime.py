"""What the commands share: a store on the configured (or bundled) Redis, for one job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import anyio
import typer

from stocksync.config import Settings
from stocksync.store.base import acting_as
from stocksync.store.connection import open_store, redis_url
from stocksync.store.redis_store import RedisStockStore

T = TypeVar("T")

# The options of the long-running commands that serve their own /metrics (worker, connector run).
MetricsPort = Annotated[
    int | None, typer.Option(help="serve /metrics on METRICS_HOST:PORT while running")
]
MetricsHost = Annotated[
    str, typer.Option(help="address /metrics binds to (0.0.0.0 in a container)")
]


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
