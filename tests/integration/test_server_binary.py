"""The embedded default runs the bundled Valkey 8.1; an operator may name another binary; a
server too old for functions is refused at start with a message that says what is needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from stocksync.config import Settings
from stocksync.store.connection import (
    UnsupportedServer,
    open_store,
    require_supported_server,
    server_version,
)
from stocksync.store.embedded import EmbeddedRedis, bundled_server_binary
from tests.support.ports import free_port


def info_of(server: EmbeddedRedis) -> dict[str, object]:
    client = redis.Redis.from_url(server.url)
    try:
        return dict(client.info("server"))
    finally:
        client.close()


def test_the_bundled_server_is_valkey_8_1(redis_server: EmbeddedRedis) -> None:
    name, version = server_version(info_of(redis_server))
    assert (name, version[:2]) == ("valkey", (8, 1))


def test_a_configured_binary_is_the_one_that_runs(tmp_path: Path) -> None:
    # Another name for the same binary: INFO's `executable` proves which file was started.
    alias = tmp_path / "operators-server"
    os.symlink(bundled_server_binary(), alias)
    server = EmbeddedRedis(tmp_path / "data", port=free_port(), server_binary=alias)
    server.start()
    try:
        assert str(info_of(server)["executable"]).endswith("operators-server")
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("info", "refused"),
    [
        ({"redis_version": "6.2.14"}, True),
        ({"redis_version": "7.0.0"}, False),
        ({"redis_version": "7.2.4", "valkey_version": "7.2.5"}, False),
        ({"redis_version": "7.2.4", "valkey_version": "7.0.9"}, True),
        ({"redis_version": "7.2.4", "server_name": "valkey", "valkey_version": "8.1.1"}, False),
        ({}, True),
    ],
)
def test_servers_older_than_redis_7_or_valkey_7_2_are_refused(
    info: dict[str, object], refused: bool
) -> None:
    if refused:
        with pytest.raises(UnsupportedServer, match=r"needs Redis >= 7\.0 or Valkey >= 7\.2"):
            require_supported_server(info)
    else:
        require_supported_server(info)


async def test_opening_the_store_checks_the_real_server(redis_url: str) -> None:
    async with open_store(Settings(), redis_url, pool_size=2) as store:
        await store.ping()
