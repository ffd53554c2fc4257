"""SqlApiKeys against real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from stocksync.auth.principal import KEY_ID_LENGTH
from stocksync.auth.repository import MAX_ACTIVE_KEYS, SqlApiKeys


async def test_sql_api_keys_create_verify_revoke(engine: Engine) -> None:
    keys = SqlApiKeys(engine, cache_seconds=0)
    key, principal = keys.create("till-7", "read,reserve", ["store-a", "store-b"])
    verified = await keys.verify(key)
    assert verified == principal
    assert verified.locations == frozenset({"store-a", "store-b"})
    assert await keys.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert keys.revoke(principal.key_id)
    assert await keys.verify(key) is None


async def test_sql_api_keys_store_no_secret(engine: Engine) -> None:
    keys = SqlApiKeys(engine)
    key, principal = keys.create("audit", "read")
    secret = key.split("_", 2)[2]
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT * FROM api_keys WHERE key_id = :k"), {"k": principal.key_id}
        ).one()
    assert secret not in " ".join(str(v) for v in row)


def count_statements(engine: Engine) -> list[str]:
    """Every SQL statement the engine runs from now on."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return statements


def unknown_key(key_id_length: int = KEY_ID_LENGTH) -> str:
    return f"ssk_{secrets.token_hex(key_id_length // 2)}_{secrets.token_urlsafe(24)}"


async def test_sql_api_keys_flood_of_unknown_keys_reads_no_row_and_caches_nothing(
    engine: Engine,
) -> None:
    keys = SqlApiKeys(engine, cache_seconds=3600)
    key, principal = keys.create("till-1", "read")
    assert await keys.verify(key) == principal  # loads the snapshot: one query
    cached = keys.cached_keys  # this key, and any other test's in a shared database
    statements = count_statements(engine)
    for _ in range(5_000):
        assert await keys.verify(unknown_key()) is None
    for _ in range(200):  # 8 KiB key ids: refused on their length
        assert await keys.verify(unknown_key(8 * 1024)) is None
    wrong_secret = key.rsplit("_", 1)[0] + "_" + secrets.token_urlsafe(24)
    assert await keys.verify(wrong_secret) is None
    assert statements == []
    assert keys.cached_keys == cached <= MAX_ACTIVE_KEYS


async def test_sql_api_keys_revocation_elsewhere_counts_after_the_refresh(
    engine: Engine,
) -> None:
    now = [0.0]
    keys = SqlApiKeys(engine, cache_seconds=10, clock=lambda: now[0])
    key, principal = keys.create("till-2", "read")
    assert await keys.verify(key) == principal
    assert SqlApiKeys(engine).revoke(principal.key_id)  # another process, e.g. the CLI
    later, _ = SqlApiKeys(engine).create("till-3", "read")
    now[0] = 9.9
    assert await keys.verify(key) == principal  # still within the refresh interval
    assert await keys.verify(later) is None
    now[0] = 10.0
    assert await keys.verify(key) is None
    assert (await keys.verify(later)) is not None


def test_sql_api_keys_create_refuses_an_empty_binding_and_keys_beyond_the_bound(
    engine: Engine,
) -> None:
    others = sum(row.revoked_at is None for row in SqlApiKeys(engine).list())
    keys = SqlApiKeys(engine, max_keys=others + 2)
    with pytest.raises(ValueError, match="at least one location"):
        keys.create("nowhere", "read", [])
    keys.create("one", "read")
    _, second = keys.create("two", "read")
    with pytest.raises(ValueError, match=f"at most {others + 2}"):
        keys.create("three", "read")
    keys.revoke(second.key_id)
    keys.create("three", "read")
