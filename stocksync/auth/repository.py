"""SqlApiKeys: API keys in the SQL database, with a short in-process cache."""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import anyio.to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from stocksync.auth.principal import Principal, hash_secret, new_secret, parse_scopes, split_key
from stocksync.ledger.tables import ApiKey


class SqlApiKeys:
    """Creates and verifies API keys. Verification is cached for ``cache_seconds``."""

    def __init__(self, engine: Engine, cache_seconds: float = 10.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    def create(
        self, name: str, scopes: str, locations: Iterable[str] | None = None
    ) -> tuple[str, Principal]:
        """Store a new key; returns the key string (shown once) and its principal."""
        parsed = parse_scopes(scopes)
        key_id, secret, key = new_secret()
        locs = sorted(set(locations)) if locations is not None else None
        row = ApiKey(
            key_id=key_id,
            name=name,
            secret_hash=hash_secret(secret),
            scopes=",".join(sorted(parsed)),
            locations=",".join(locs) if locs is not None else None,
        )
        with Session(self.engine, expire_on_commit=False) as session:
            session.add(row)
            session.commit()
        return key, _principal(row)

    def revoke(self, key_id: str) -> bool:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(ApiKey, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = datetime.now(UTC)
            session.commit()
        self._cache.pop(key_id, None)
        return True

    def list(self) -> list[ApiKey]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(select(ApiKey).order_by(col(ApiKey.created_at))))

    async def verify(self, key: str) -> Principal | None:
        """The principal of a valid, unrevoked key; None otherwise."""
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.cache_seconds:
            row = cached[1]
        else:
            row = await anyio.to_thread.run_sync(self._load, key_id)
            self._cache[key_id] = (now, row)
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.secret_hash, hash_secret(secret)):
            return None
        return _principal(row)

    def _load(self, key_id: str) -> ApiKey | None:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(ApiKey, key_id)
            if row is not None:
                session.expunge(row)
            return row


def _principal(row: ApiKey) -> Principal:
    return Principal(
        key_id=row.key_id,
        name=row.name,
        scopes=frozenset(row.scopes.split(",")),
        locations=frozenset(row.locations.split(",")) if row.locations is not None else None,
    )
