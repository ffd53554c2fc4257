"""SQLModel tables."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class ApiKey(SQLModel, table=True):
    """An API key: only a SHA-256 of its secret is stored; the key itself is shown once."""

    __tablename__ = "api_keys"

    key_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    secret_hash: str = Field(max_length=64)
    scopes: str = Field(max_length=200, description="comma-separated scopes")
    locations: str | None = Field(default=None, description="comma-separated; NULL = all")
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
