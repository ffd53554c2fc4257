"""The extension point for connectors: the core finds them by entry point, never by import.

A connector package registers a factory under the ``stocksync.connectors`` entry-point group
(``name = "package.module:factory"``). The factory takes the connector's table of the TOML
config file and returns a :class:`Connector`. ``stocksync connector run NAME`` runs its loop;
the API mounts its webhook under ``/v1/connectors/{name}/webhook``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import Response

from stocksync.config import Settings
from stocksync.domain.errors import NotFound
from stocksync.ledger.sale_commits import SaleCommitter
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.store.redis_store import RedisStockStore

ENTRY_POINT_GROUP = "stocksync.connectors"


@dataclass(frozen=True)
class EngineContext:
    """What the engine lends a connector: its store, ledger database, metrics registry and the
    process's sale committer (sales are written to the ledger before they are acknowledged)."""

    settings: Settings
    store: RedisStockStore
    engine: Engine
    ledger: SqlLedger
    registry: CollectorRegistry
    sales: SaleCommitter


SourceCounts = dict[tuple[str, str], int]  # (sku, location_id) -> units the source reports


@dataclass(frozen=True)
class Drift:
    """A position where the source's count and the engine's differ."""

    sku: str
    location_id: str
    source: int
    engine: int

    @property
    def units(self) -> int:
        return abs(self.source - self.engine)


class Connector(Protocol):
    """One source system (a POS, a warehouse, a web shop) kept in step with the engine."""

    name: str

    async def run(self, ctx: EngineContext) -> None:
        """Poll or consume until cancelled; return at once if the connector only takes webhooks."""

    async def handle_webhook(self, ctx: EngineContext, request: Request) -> Response:
        """Verify and apply one webhook delivery."""

    async def drift(self, ctx: EngineContext) -> list[Drift] | None:
        """Read the source's current counts and compare them with the engine's (exporting
        ``stocksync_source_drift_units``); None when the source cannot tell its counts."""


ConnectorFactory = Callable[[Mapping[str, Any]], Connector]


def available() -> list[str]:
    """Names of the installed connectors."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def read_config(path: Path) -> dict[str, dict[str, Any]]:
    """The TOML config file: one table per connector, named as the connector."""
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    bad = [name for name, table in raw.items() if not isinstance(table, dict)]
    if bad:
        raise ValueError(f"{path}: top-level keys must be connector tables: {', '.join(bad)}")
    return raw


def load(name: str, config: Mapping[str, Any]) -> Connector:
    """Build the connector ``name`` from its config table."""
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        known = ", ".join(available()) or "none installed"
        raise NotFound(f"no connector named {name!r} ({known})", resource="connector")
    factory: ConnectorFactory = next(iter(found)).load()
    return factory(config)


def load_configured(path: Path | None) -> dict[str, Connector]:
    """Every connector with a table in the config file (none without a file)."""
    if path is None:
        return {}
    return {name: load(name, table) for name, table in read_config(path).items()}
