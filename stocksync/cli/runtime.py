"""What the commands share: the Redis they talk to and a store on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TypeVar

import anyio

from stocksync.api.app import open_redis
from stocksync.config import Settings
from stocksync.store.embedded import EmbeddedRedis
from stocksync.store.redis_store import RedisStockStore

T = TypeVar("T")


@contextmanager
def redis_url(settings: Settings) -> Iterator[str]:
    """The configured Redis, or the bundled one (reused if `serve` already runs it)."""
    if settings.redis_url is not None:
        yield settings.redis_url
        return
    embedded = EmbeddedRedis(settings.data_dir, appendfsync=settings.appendfsync)
    url = embedded.start()
    try:
        yield url
    finally:
        embedded.stop()


@asynccontextmanager
async def open_store(
    settings: Settings, url: str, pool_size: int = 4
) -> AsyncIterator[RedisStockStore]:
    client = await open_redis(settings.model_copy(update={"redis_pool_size": pool_size}), url)
    try:
        yield RedisStockStore(client, settings.namespace)
    finally:
        await client.aclose()


def run_with_store(
    settings: Settings, job: Callable[[RedisStockStore], Awaitable[T]], pool_size: int = 4
) -> T:
    with redis_url(settings) as url:

        async def main() -> T:
            async with open_store(settings, url, pool_size) as store:
                return await job(store)

        return anyio.run(main)
