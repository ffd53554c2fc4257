"""A child process that races reservations through its own store and batcher.

``python -m tests.support.batch_child URL NAMESPACE SKU COUNT TAG``: connects, prints
``ready``, waits for a line on stdin (the gate, so every process starts together), then
submits COUNT one-unit reservations at once and prints one JSON line: ids won, ids refused,
and the sizes of the batches it sent.
"""

from __future__ import annotations

import asyncio
import json
import sys

from redis.asyncio import Redis

from stocksync.config import Settings
from stocksync.domain.errors import InsufficientStock
from stocksync.domain.model import Line, ReserveResult
from stocksync.store.redis_store import RedisStockStore


async def main(url: str, namespace: str, sku: str, count: int, tag: str) -> None:
    client = Redis.from_url(url, decode_responses=True)
    sizes: list[int] = []
    store = RedisStockStore(client, Settings(namespace=namespace), observe_batch=sizes.append)
    await store.load_library(prune=False)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    line = [Line(sku, "store-a", 1)]
    ids = [f"{tag}-{i}" for i in range(count)]
    outcomes = await asyncio.gather(
        *(store.reserve(rid, "web", line, 600) for rid in ids), return_exceptions=True
    )
    won = [rid for rid, o in zip(ids, outcomes, strict=True) if isinstance(o, ReserveResult)]
    lost = [rid for rid, o in zip(ids, outcomes, strict=True) if isinstance(o, InsufficientStock)]
    print(json.dumps({"won": won, "lost": lost, "sizes": sizes}), flush=True)
    await client.aclose()


if __name__ == "__main__":
    url, namespace, sku, count, tag = sys.argv[1:]
    asyncio.run(main(url, namespace, sku, int(count), tag))
