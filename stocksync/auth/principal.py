"""Who is calling: the scopes and locations of an API key. Pure, no I/O."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from stocksync.domain.errors import Forbidden

SCOPES = ("read", "reserve", "stock:write", "admin")
KEY_PREFIX = "ssk"
KEY_ID_LENGTH = 12  # secrets.token_hex(6)
SECRET_LENGTH = 32  # secrets.token_urlsafe(24)
KEY_LENGTH = len(KEY_PREFIX) + 1 + KEY_ID_LENGTH + 1 + SECRET_LENGTH
_KEY = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{{KEY_ID_LENGTH}}})_([A-Za-z0-9_-]{{{SECRET_LENGTH}}})")


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    scopes: frozenset[str]
    locations: frozenset[str] | None  # None: every location

    def require(self, scope: str, *or_scopes: str) -> None:
        """Raise :class:`Forbidden` unless the key has ``scope`` or one of ``or_scopes``
        (``admin`` has every scope)."""
        wanted = (scope, *or_scopes)
        if "admin" not in self.scopes and not self.scopes.intersection(wanted):
            names = " or ".join(repr(s) for s in wanted)
            raise Forbidden(f"this key lacks the {names} scope", scope=" or ".join(wanted))

    def require_locations(self, location_ids: Iterable[str]) -> None:
        if self.locations is None:
            return
        outside = sorted(set(location_ids) - self.locations)
        if outside:
            raise Forbidden(
                f"this key may not touch location(s) {', '.join(outside)}", locations=outside
            )


def new_secret() -> tuple[str, str, str]:
    """A new key as (key_id, secret, full key string)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    return key_id, secret, f"{KEY_PREFIX}_{key_id}_{secret}"


def split_key(key: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed key string, else None.

    Only the exact shape :func:`new_secret` makes is accepted; the length is checked first, so
    an over-long header costs nothing and reaches no lookup.
    """
    if len(key) != KEY_LENGTH:
        return None
    match = _KEY.fullmatch(key)
    return None if match is None else (match[1], match[2])


def hash_secret(secret: str) -> str:
    # Secrets are 192 random bits, so a fast hash is enough; no password stretching is needed.
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(text: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = scopes - set(SCOPES)
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}")
    return scopes
