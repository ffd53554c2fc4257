"""Loads the Lua scripts shipped in ``lua/`` and registers them with redis-py.

Each operation file is prefixed with ``_lib.lua``; redis-py's registered script computes the
SHA once, calls EVALSHA, and reloads the script by itself on NOSCRIPT (after a restart or a
failover).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

OPERATIONS = (
    "reserve",
    "confirm",
    "ready",
    "fulfill",
    "release",
    "extend",
    "set_count",
    "adjust",
    "read_positions",
    "get_reservation",
    "expire",
    "upsert_location",
    "rebuild",
    "check_regression",
    "nearby",
    "find_reservations",
    "move",
)


@cache
def script_source(name: str) -> str:
    """The full text of an operation script: the shared helpers, then the operation."""
    lua = resources.files("stocksync.store") / "lua"
    return (lua / "_lib.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


def register_scripts(client: Redis) -> dict[str, AsyncScript]:
    return {name: client.register_script(script_source(name)) for name in OPERATIONS}
