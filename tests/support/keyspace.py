"""Every Redis key of a test's namespace with its value: compare two reads to prove that a
refused operation wrote nothing."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis


async def namespace_keys(client: Redis, namespace: str) -> dict[str, Any]:
    """Each key of ``namespace`` (its stock domains' and its directory's) with its value read
    by type (a stream: its entries) and whether it expires. Equal reads: nothing was written
    (an EXPIRE refreshed on a key that already expired is the one write it cannot see)."""
    readers = {
        "hash": client.hgetall,
        "set": client.smembers,
        "string": client.get,
        "list": lambda k: client.lrange(k, 0, -1),
        "stream": client.xrange,
        "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
    }
    out: dict[str, Any] = {}
    async for key in client.scan_iter(match=f"ss:{{{namespace}[}}:]*", count=1000):
        value = await readers[await client.type(key)](key)
        out[key] = (value, await client.pttl(key) > 0)
    return out
