"""``stocksync connector …`` and ``stocksync drift``: run installed connectors by name."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import anyio.to_thread
import typer
from prometheus_client import CollectorRegistry, start_http_server
from rich import box
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, col, select

from stocksync import plugins
from stocksync.cli.runtime import MetricsHost, MetricsPort, run_with_store
from stocksync.config import Settings
from stocksync.domain.errors import NotFound
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.sale_commits import SaleCommitter
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.ledger.tables import ConnectorDeadLetter
from stocksync.plugins import Connector, Drift, EngineContext
from stocksync.store.base import acting_as
from stocksync.store.redis_store import RedisStockStore

connector_app = typer.Typer(help="Connectors to POS, warehouse and web-shop systems.")
console = Console(width=None if sys.stdout.isatty() else 120)

ConfigFile = Annotated[
    Path,
    typer.Option(
        "--config", exists=True, dir_okay=False, help="TOML file with a table per connector"
    ),
]


async def engine_context(settings: Settings, store: RedisStockStore) -> EngineContext:
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite ledger lives there
    engine = make_engine(settings.sqlalchemy_url)
    await anyio.to_thread.run_sync(create_tables, engine)
    ledger = SqlLedger(engine)
    return EngineContext(
        settings, store, engine, ledger, CollectorRegistry(), SaleCommitter(ledger)
    )


def _configured(config: Path, names: list[str] | None) -> dict[str, Connector]:
    try:
        tables = plugins.read_config(config)
        wanted = names or sorted(tables)
        missing = [n for n in wanted if n not in tables]
        if missing:
            raise typer.BadParameter(f"{config} has no table for: {', '.join(missing)}")
        return {name: plugins.load(name, tables[name]) for name in wanted}
    except (ValueError, NotFound) as exc:  # pydantic's ValidationError is a ValueError
        raise typer.BadParameter(str(exc)) from exc


@connector_app.command("list")
def list_connectors() -> None:
    """The installed connectors."""
    for name in plugins.available():
        typer.echo(name)


@connector_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="connector name, e.g. square, warehouse, shopify")],
    config: ConfigFile,
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Run one connector's polling or consuming loop (and its drift checks) until stopped."""
    connector = _configured(config, [name])[name]
    settings = Settings()

    async def job(store: RedisStockStore) -> None:
        ctx = await engine_context(settings, store)
        if metrics_port is not None:
            start_http_server(metrics_port, addr=metrics_host, registry=ctx.registry)
        console.print(f"connector {name} on namespace {settings.namespace!r}")
        try:
            with acting_as(f"connector:{name}"):
                await connector.run(ctx)
        finally:
            await ctx.sales.aclose()
            ctx.engine.dispose()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_with_store(settings, job, pool_size=8)


def drift(
    config: ConfigFile,
    connector: Annotated[
        list[str] | None, typer.Option(help="only this connector (repeatable)")
    ] = None,
) -> None:
    """Compare each source's current counts with the engine's; exit 1 on drift."""
    connectors = _configured(config, list(connector) if connector else None)
    settings = Settings()

    async def job(store: RedisStockStore) -> dict[str, list[Drift] | None]:
        ctx = await engine_context(settings, store)
        try:
            return {name: await c.drift(ctx) for name, c in connectors.items()}
        finally:
            await ctx.sales.aclose()
            ctx.engine.dispose()

    results = run_with_store(settings, job)
    drifting = False
    for name, drifts in results.items():
        if drifts is None:
            console.print(f"{name}: the source cannot report its counts; not checked")
            continue
        units = sum(d.units for d in drifts)
        console.print(f"{name}: {len(drifts)} position(s) drifting, {units} unit(s)")
        if drifts:
            drifting = True
            table = Table("sku", "location", "source", "engine", box=box.SIMPLE_HEAD)
            for d in drifts:
                table.add_row(d.sku, d.location_id, str(d.source), str(d.engine))
            console.print(table)
    if drifting:
        raise typer.Exit(code=1)


@connector_app.command("dead-letters")
def dead_letters(
    name: Annotated[str, typer.Argument(help="connector name")],
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    payloads: Annotated[bool, typer.Option(help="print each payload as received")] = False,
) -> None:
    """The payloads a connector could not apply, newest first, with the reason."""
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    create_tables(engine)
    with Session(engine) as session:
        rows = session.exec(
            select(ConnectorDeadLetter)
            .where(ConnectorDeadLetter.connector == name)
            .order_by(col(ConnectorDeadLetter.id).desc())
            .limit(limit)
        ).all()
    table = Table("id", "received", "kind", "reason", box=box.SIMPLE_HEAD)
    for row in rows:
        table.add_row(str(row.id), row.received_at.isoformat(), row.kind, row.reason)
    console.print(table if rows else f"no dead letters for {name}")
    if payloads:
        for row in rows:
            typer.echo(f"--- {row.id}\n{row.payload}")
