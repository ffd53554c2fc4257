"""SqlApiKeys: API keys in the SQL database, verified in memory against a periodic snapshot."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
import anyio.to_thread
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from stocksync.auth.principal import Principal, hash_secret, new_secret, parse_scopes, split_key
from stocksync.ledger.tables import ApiKey

# The snapshot holds every active key, so its size is bounded by what operators create, never
# by what callers send; create() refuses a key beyond this bound.
MAX_ACTIVE_KEYS = 100_000
# An unknown key id is compared against this hash, so it takes the same path (and time) as a
# known id with a wrong secret.
DUMMY_HASH = hash_secret("no key has this secret")


@dataclass(frozen=True)
class ActiveKey:
    secret_hash: str
    principal: Principal


class SqlApiKeys:
    """Creates, revokes and verifies API keys.

    Verification reads no database row per request: every ``cache_seconds`` one query loads
    the active keys (id, hash, scopes, locations), and keys are checked against that snapshot
    in memory. An unknown key id is refused without a database read, and the snapshot cannot
    grow with requests. A key created or revoked by another process (the CLI) counts after the
    next refresh; ``create()`` and ``revoke()`` on this object count at once.
    """

    def __init__(
        self,
        engine: Engine,
        cache_seconds: float = 10.0,
        *,
        max_keys: int = MAX_ACTIVE_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self.max_keys = max_keys
        self._clock = clock
        self._active: dict[str, ActiveKey] = {}
        self._loaded_at: float | None = None
        self._refresh_lock: anyio.Lock | None = None

    @property
    def cached_keys(self) -> int:
        """How many keys the in-memory snapshot holds (the active keys, nothing else)."""
        return len(self._active)

    def create(
        self, name: str, scopes: str, locations: Iterable[str] | None = None
    ) -> tuple[str, Principal]:
        """Store a new key; returns the key string (shown once) and its principal."""
        parsed = parse_scopes(scopes)
        locs = sorted(set(locations)) if locations is not None else None
        if locs is not None and not locs:
            raise ValueError("a key bound to locations needs at least one location")
        key_id, secret, key = new_secret()
        row = ApiKey(
            key_id=key_id,
            name=name,
            secret_hash=hash_secret(secret),
            scopes=",".join(sorted(parsed)),
            locations=",".join(locs) if locs is not None else None,
        )
        with Session(self.engine, expire_on_commit=False) as session:
            active = session.exec(
                select(func.count()).select_from(ApiKey).where(col(ApiKey.revoked_at).is_(None))
            ).one()
            if active >= self.max_keys:
                raise ValueError(f"{active} keys are active (at most {self.max_keys}); revoke some")
            session.add(row)
            session.commit()
        principal = _principal(row)
        self._active[key_id] = ActiveKey(row.secret_hash, principal)
        return key, principal

    def revoke(self, key_id: str) -> bool:
        with Session(self.engine, expire_on_commit=False) as session:
            row = session.get(ApiKey, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = datetime.now(UTC)
            session.commit()
        self._active.pop(key_id, None)
        return True

    def list(self) -> list[ApiKey]:
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(select(ApiKey).order_by(col(ApiKey.created_at))))

    async def verify(self, key: str) -> Principal | None:
        """The principal of a valid, unrevoked key; None otherwise."""
        parts = split_key(key)
        if parts is None:
            return None  # malformed or over-long: refused before any lookup
        await self._refresh_if_stale()
        key_id, secret = parts
        active = self._active.get(key_id)
        expected = DUMMY_HASH if active is None else active.secret_hash
        matches = hmac.compare_digest(expected, hash_secret(secret))
        if active is None or not matches:
            return None
        return active.principal

    def _fresh(self) -> bool:
        return self._loaded_at is not None and self._clock() - self._loaded_at < self.cache_seconds

    async def _refresh_if_stale(self) -> None:
        if self._fresh():
            return
        if self._refresh_lock is None:
            self._refresh_lock = anyio.Lock()
        async with self._refresh_lock:
            if self._fresh():  # another request refreshed it while this one waited
                return
            started = self._clock()
            self._active = await anyio.to_thread.run_sync(self._load_active)
            self._loaded_at = started

    def _load_active(self) -> dict[str, ActiveKey]:
        """Every active key, in one query."""
        with Session(self.engine) as session:
            rows = session.exec(select(ApiKey).where(col(ApiKey.revoked_at).is_(None))).all()
            return {row.key_id: ActiveKey(row.secret_hash, _principal(row)) for row in rows}


def _principal(row: ApiKey) -> Principal:
    return Principal(
        key_id=row.key_id,
        name=row.name,
        scopes=frozenset(row.scopes.split(",")),
        locations=frozenset(row.locations.split(",")) if row.locations is not None else None,
    )
