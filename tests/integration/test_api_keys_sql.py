"""SqlApiKeys against real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from stocksync.auth.repository import SqlApiKeys


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
