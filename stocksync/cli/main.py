"""The ``stocksync`` command line (typer)."""

from __future__ import annotations

import csv
import os
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import anyio
import typer
import uvicorn
from prometheus_client import start_http_server
from rich import box
from rich.console import Console
from rich.table import Table

from stocksync.api.app import create_app
from stocksync.api.server import uvicorn_options
from stocksync.auth.repository import SqlApiKeys
from stocksync.cli.cluster import cluster_app
from stocksync.cli.connectors import connector_app, drift
from stocksync.cli.demo import DEMO_TRANSFER, LOCATIONS, WEB_BERLIN, load_demo
from stocksync.cli.domains import domains_app
from stocksync.cli.runtime import MetricsHost, MetricsPort, run_with_store
from stocksync.cli.status import status
from stocksync.config import Settings
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.queries import AUDITED
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.logs import configure_logging
from stocksync.metrics import Metrics
from stocksync.recovery.audit import AuditReport, audit_domains, merged, record_audit
from stocksync.recovery.rebuild import rebuild_domains
from stocksync.recovery.regression import (
    check_regression_domains,
    check_regression_once,
    domains_behind_ledger,
    regression_lease,
)
from stocksync.store.base import acting_as
from stocksync.store.connection import open_redis, open_store, redis_url
from stocksync.store.keys import Keys
from stocksync.store.migrate import layout_version, migrate_store, reindex_reservations
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.process import WorkersProcess, worker_command
from stocksync.workers.supervisor import run_workers

app = typer.Typer(help="stocksync: real-time inventory and reservations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
stock_app = typer.Typer(help="Stock positions.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(stock_app, name="stock")
db_app = typer.Typer(help="The SQL ledger database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(connector_app, name="connector")
app.add_typer(domains_app, name="domains")
app.add_typer(cluster_app, name="cluster")
app.command("drift")(drift)
app.command("status")(status)
console = Console(width=None if sys.stdout.isatty() else 120)  # pipes: no truncation


@app.callback()
def configure() -> None:
    """stocksync: real-time inventory and reservations."""
    # Every command logs alike: JSON lines on stderr, or lines for a person on a terminal.
    configure_logging(Settings())


def api_keys(settings: Settings) -> SqlApiKeys:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    create_tables(engine)
    return SqlApiKeys(engine)


def create_demo(settings: Settings, url: str) -> str:
    """Load the demo data set and create an all-scopes key; returns the key."""

    async def main() -> int:
        async with open_store(settings, url) as store:
            with acting_as("cli:demo"):
                return await load_demo(store)

    positions = anyio.run(main)
    key, _ = api_keys(settings).create("demo", "read,reserve,stock:write,admin")
    key_file = settings.data_dir / "demo-key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    console.print(
        f"Loaded the demo data set: {len(LOCATIONS)} locations, {positions} positions, "
        f"the {WEB_BERLIN.pool_id} pool, transfer {DEMO_TRANSFER} on its way to Mitte."
    )
    console.print(f"Demo API key (also in {key_file}):")
    print(key, flush=True)
    return key


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
    workers: Annotated[int | None, typer.Option(help="API worker processes")] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="load the demo data and print a key")
    ] = False,
    worker_metrics_port: Annotated[
        int | None,
        typer.Option(help="the workers process's /metrics port (default: port + 1; 0 = none)"),
    ] = None,
) -> None:
    """Run the API (and, on the embedded default, the bundled Redis) and the workers."""
    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets
    # the bundled Redis be stopped (and its AOF flushed) on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    settings = Settings()
    overrides = {
        "host": host,
        "port": port,
        "workers": workers,
        "worker_metrics_port": worker_metrics_port,
    }
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    metrics = Metrics()
    with redis_url(settings, on_restart=metrics.embedded_redis_restarts.inc) as url:
        settings = settings.model_copy(update={"redis_url": url})
        if demo:
            create_demo(settings, url)
        console.print(
            f"stocksync on http://{settings.host}:{settings.port}  "
            f"(docs: /docs, redis: {url}, database: {settings.sqlalchemy_url})"
        )
        # Once, before the processes that would otherwise race to create the schema.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.sqlalchemy_url)
        create_tables(engine)
        engine.dispose()
        with workers_beside_api(settings) as api_settings:
            if api_settings.workers == 1:
                uvicorn.run(create_app(api_settings, metrics), **uvicorn_options(api_settings))
            else:
                os.environ["STOCKSYNC_REDIS_URL"] = url
                os.environ["STOCKSYNC_DATA_DIR"] = str(settings.data_dir)
                os.environ["STOCKSYNC_RUN_WORKERS"] = "false"  # never once per API process
                uvicorn.run(
                    "stocksync.api.app:app_from_env",
                    factory=True,
                    workers=settings.workers,
                    **uvicorn_options(api_settings),
                )


@contextmanager
def workers_beside_api(settings: Settings) -> Iterator[Settings]:
    """Start the workers process ``serve`` supervises (unless they run in the API, or not at
    all); yields the API's settings, and stops the workers process after the API."""
    if not settings.run_workers or (settings.workers_in_api and settings.workers == 1):
        yield settings
        return
    port = settings.worker_metrics_port
    port = settings.port + 1 if port is None else port
    if port and not port_is_free(settings.host, port):
        raise typer.BadParameter(
            f"{settings.host}:{port} is in use: choose the workers' metrics port with "
            "--worker-metrics-port (0 = do not serve them)"
        )
    env = {
        **os.environ,
        "STOCKSYNC_REDIS_URL": str(settings.redis_url),
        "STOCKSYNC_DATA_DIR": str(settings.data_dir),
    }
    child = WorkersProcess(worker_command(settings.host, port or None), env)
    child.start()
    where = f"metrics on http://{settings.host}:{port}/metrics" if port else "no metrics port"
    console.print(f"workers in process {child.pid} ({where})")
    try:
        yield settings.model_copy(update={"run_workers": False})
    finally:
        child.stop()


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@app.command()
def demo() -> None:
    """Load the demo data set and print a new API key (no server is started)."""
    settings = Settings()
    with redis_url(settings) as url:
        create_demo(settings, url)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations (Alembic) to the configured database."""
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    create_tables(make_engine(settings.sqlalchemy_url))
    typer.echo(f"database at head: {settings.sqlalchemy_url}")


@app.command()
def worker(
    metrics_port: MetricsPort = None,
    metrics_host: MetricsHost = "127.0.0.1",
) -> None:
    """Run the background workers (reaper, ledger copy, regression checks) without the API."""
    settings = Settings()

    async def job(store: RedisStockStore) -> None:
        engine = make_engine(settings.sqlalchemy_url)
        await anyio.to_thread.run_sync(create_tables, engine)
        metrics = Metrics()
        # The workers' metrics (ledger lag, drift, reaper, restarts) live in this process:
        # without the API beside them, this is the only place Prometheus can read them.
        if metrics_port is not None:
            start_http_server(metrics_port, addr=metrics_host, registry=metrics.registry)
        if await domains_behind_ledger(store, engine):
            await check_regression_domains(store, engine, metrics)
        else:  # one process of the deployment checks; the others' loops take over later
            lease = regression_lease(store, settings.regression_check_seconds)
            await check_regression_once(store, engine, metrics, lease)
        console.print(f"stocksync worker on namespace {settings.namespace!r}")
        await run_workers(store, SqlLedger(engine), engine, metrics, settings)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_with_store(settings, job, pool_size=8)


@app.command()
def rebuild(
    sku: Annotated[list[str] | None, typer.Option(help="SKU to rebuild (repeatable)")] = None,
) -> None:
    """Rebuild Redis state from the ledger: the given SKUs, or every frozen (regressed) one."""
    settings = Settings()
    engine = make_engine(settings.sqlalchemy_url)
    create_tables(engine)
    results = run_with_store(
        settings,
        lambda store: rebuild_domains(
            store, engine, list(sku) if sku else None, settings.retention_seconds
        ),
    )
    for done in results:
        r, where = done.result, "" if done.domain == "default" else f" in domain {done.domain}"
        console.print(
            f"rebuilt {r.sku}{where}: seq {r.seq}, {r.positions} position(s), "
            f"{r.reservations} active reservation(s)"
        )
    if not results:
        console.print("nothing to rebuild: no SKU is frozen")


@app.command("migrate-store")
def migrate_store_command() -> None:
    """Bring Redis keys an older release wrote to this release's layout (idempotent).

    Every process also does this when it opens the store, before its first script call."""
    settings = Settings()

    async def main(url: str) -> tuple[int, int, int]:
        client = await open_redis(url, 2, settings.redis_pool_timeout)
        try:
            keys = Keys(settings.namespace)
            rewritten = await migrate_store(client, keys)
            store = RedisStockStore(client, settings)
            await store.load_library()
            indexed = await reindex_reservations(store)
            return rewritten, indexed, await layout_version(client, keys)
        finally:
            await client.aclose()

    with redis_url(settings) as url:
        rewritten, indexed, version = anyio.run(main, url)
    console.print(
        f"store layout {version}: {rewritten} position key(s) rewritten, "
        f"{indexed} active reservation(s) indexed"
    )


@app.command()
def audit(
    export: Annotated[Path | None, typer.Option(help="write the differences as CSV")] = None,
) -> None:
    """Compare Redis with the fold of the ledger for every position; exit 1 on drift."""
    settings = Settings()
    engine = make_engine(settings.sqlalchemy_url)
    create_tables(engine)

    async def job(store: RedisStockStore) -> AuditReport:
        reports = await audit_domains(store, engine)
        for domain, report in reports.items():  # `stocksync status` shows the newest audits
            await record_audit(store, report, domain)
        return merged(reports)

    report = run_with_store(settings, job)
    console.print(
        f"{report.positions} position(s) compared, {report.in_flight} with events not yet in "
        f"the ledger, {len(report.drifts)} drifting, {report.drift_units} unit(s) of drift"
    )
    if report.drifts:
        # A row per bucket that differs: a position drifts in one or two buckets at a time.
        table = Table("sku", "location", "bucket", "redis", "ledger", box=box.SIMPLE_HEAD)
        for d in report.drifts:
            for bucket, (ours, ledger) in d.buckets.items():
                table.add_row(d.sku, d.location_id, bucket, str(ours), str(ledger))
        console.print(table)
    if export is not None:
        with export.open("w", newline="") as f:
            writer = csv.writer(f)
            sides = [f"{side}_{bucket}" for bucket in AUDITED for side in ("redis", "ledger")]
            writer.writerow(["sku", "location_id", *sides])
            for d in report.drifts:
                numbers = [v for pair in d.pairs().values() for v in pair]
                writer.writerow([d.sku, d.location_id, *numbers])
    if report.drifts:
        raise typer.Exit(code=1)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="who the key is for")],
    scopes: Annotated[str, typer.Option(help="comma-separated: read,reserve,stock:write,admin")],
    locations: Annotated[str | None, typer.Option(help="comma-separated location ids")] = None,
) -> None:
    """Create an API key. It is printed once; only its hash is stored."""
    # `--locations ''` is a mistake, not "every location": the key would be unbound.
    locs = None if locations is None else [x.strip() for x in locations.split(",") if x.strip()]
    try:
        key, principal = api_keys(Settings()).create(name, scopes, locs)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(key)
    where = ", ".join(sorted(principal.locations)) if principal.locations else "all locations"
    typer.echo(f"# {principal.name}: {', '.join(sorted(principal.scopes))} on {where}", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (never their secrets)."""
    table = Table("key id", "name", "scopes", "locations", "created", "revoked")
    for row in api_keys(Settings()).list():
        table.add_row(
            row.key_id,
            row.name,
            row.scopes,
            row.locations or "all",
            f"{row.created_at:%Y-%m-%d %H:%M}",
            "yes" if row.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id (the part after ``ssk_``)."""
    if not api_keys(Settings()).revoke(key_id):
        raise typer.Exit(code=1)


@stock_app.command("show")
def stock_show(sku: str) -> None:
    """Show a SKU's stock at every location as a table."""
    settings = Settings()
    rows = run_with_store(settings, lambda store: store.positions(sku))
    if not rows:
        console.print(f"No stock positions for {sku}.")
        raise typer.Exit(code=1)
    table = Table(title=sku, box=box.SIMPLE_HEAD)
    table.add_column("location", no_wrap=True)
    for column in ("kind", "on hand", "reserved", "safety", "available"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for position, location in sorted(rows, key=lambda r: r[1].location_id):
        table.add_row(
            location.location_id,
            location.kind,
            str(position.on_hand),
            str(position.reserved),
            str(position.safety_stock),
            str(position.available),
        )
    table.add_section()
    table.add_row(
        "total",
        "",
        *(
            str(sum(getattr(p, f) for p, _ in rows))
            for f in ("on_hand", "reserved", "safety_stock", "available")
        ),
    )
    console.print(table)
