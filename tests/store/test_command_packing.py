"""Commands are packed by hiredis (C) on the store's connections, byte for byte as redis-py's
own packer does, and the server understands them."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from stocksync.store.connection import hiredis_packing, open_redis

SAMPLES: list[tuple[object, ...]] = [
    ("PING",),
    ("CONFIG GET", "maxmemory"),
    ("FCALL", "ss_x_batch", 1, "ss:{n}:", 604800, 0, 2, "reserve", 3, "r-1", "é✓", ""),
    ("SET", b"k\x00\xff", 1.5),
]


def test_packing_matches_redis_py_byte_for_byte() -> None:
    plain = Connection()
    packed = hiredis_packing(Connection)()
    for args in SAMPLES:
        assert b"".join(packed.pack_command(*args)) == b"".join(plain.pack_command(*args))


async def test_the_store_s_connections_use_it_against_the_real_server(redis_url: str) -> None:
    client: Redis = await open_redis(redis_url, 2, 5.0)
    try:
        assert client.connection_pool.connection_class.__name__.startswith("Hiredis")
        assert await client.set("packing-probe", "é✓ 1", ex=60)
        assert await client.get("packing-probe") == "é✓ 1"
        assert (await client.config_get("maxclients"))["maxclients"] == "10000"
    finally:
        await client.aclose()
