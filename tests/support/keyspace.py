"""Every key of a namespace (each domain and the directory) with its whole value: a refusal
must leave the snapshot taken before it equal to the one taken after."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

Snapshot = dict[str, tuple[str, bool, Any]]


async def snapshot(client: Redis, namespace: str) -> Snapshot:
    """Key -> (type, whether it expires, value) of every key of ``namespace``: its domains'
    keys ``ss:{<namespace>:<domain>}:…`` and its directory's ``ss:{<namespace>}:…``."""
    found: Snapshot = {}
    for pattern in (f"ss:{{{namespace}:*", f"ss:{{{namespace}}}:*"):
        async for key in client.scan_iter(match=pattern, count=1000):
            kind, value = await _value(client, str(key))
            found[str(key)] = (kind, await client.ttl(key) != -1, value)
    return found


async def _value(client: Redis, key: str) -> tuple[str, Any]:
    kind = str(await client.type(key))
    if kind == "hash":
        return kind, await client.hgetall(key)  # type: ignore[misc]
    if kind == "zset":
        return kind, await client.zrange(key, 0, -1, withscores=True)
    if kind == "set":
        return kind, sorted(await client.smembers(key))  # type: ignore[misc]
    if kind == "stream":
        return kind, await client.xrange(key)
    if kind == "list":
        return kind, await client.lrange(key, 0, -1)  # type: ignore[misc]
    return kind, await client.get(key)


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
