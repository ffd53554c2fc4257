"""A throw-away PostgreSQL database on the local server (trust auth as ``postgres``)."""

from __future__ import annotations

import secrets
from types import TracebackType
from typing import Self

import psycopg
from psycopg import sql

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user=PG_USER,
        dbname="postgres",
        autocommit=True,
        connect_timeout=3,
    )


def unreachable() -> str | None:
    """Why the PostgreSQL server cannot be used, or None when it can."""
    try:
        with _admin() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} unreachable ({str(exc).strip()[:120]})"
    return None


class TempDatabase:
    """``CREATE DATABASE stocksync_bench_<random>`` on enter, ``DROP ... WITH (FORCE)`` on exit."""

    def __init__(self) -> None:
        self.name = f"stocksync_bench_{secrets.token_hex(4)}"
        self.url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.name}"
        self.created = False

    def __enter__(self) -> Self:
        with _admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self.created = True
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.created:
            return
        with _admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )
        self.created = False


def show(*names: str) -> dict[str, str]:
    """``SHOW`` values of the server (e.g. fsync, synchronous_commit)."""
    found = {}
    with _admin() as conn:
        for name in names:
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            found[name] = str(row[0]) if row else "?"
    return found
