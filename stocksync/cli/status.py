"""``stocksync status``: what ``/readyz`` reports, and what an operator looks at next."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import anyio
import typer
from redis.asyncio import Redis
from rich import box
from rich.console import Console
from rich.table import Table

from stocksync import health
from stocksync.config import Settings
from stocksync.ledger.db import make_engine
from stocksync.store.base import acting_as
from stocksync.store.embedded import EmbeddedRedis
from stocksync.store.redis_store import RedisStockStore

console = Console(width=None if sys.stdout.isatty() else 120)


def status_redis_url(settings: Settings) -> str:
    """The configured Redis, or where the bundled one listens when `serve` runs it. Never
    started here: a status that started the Redis it reports on would prove nothing."""
    if settings.redis_url is not None:
        return settings.redis_url
    return EmbeddedRedis(settings.data_dir).url


async def gather(settings: Settings) -> health.Status:
    engine = make_engine(settings.sqlalchemy_url)
    client = Redis.from_url(
        status_redis_url(settings),
        decode_responses=True,
        socket_connect_timeout=health.CHECK_TIMEOUT_SECONDS,
        socket_timeout=health.CHECK_TIMEOUT_SECONDS,
    )
    try:
        with acting_as("cli"):
            return await health.status(RedisStockStore(client, settings), engine, settings)
    finally:
        await client.aclose()
        engine.dispose()


def summary(name: str, check: health.Check) -> str:
    """One line of what a check measured."""
    if check.error:
        return check.error
    d = check.details
    if name in ("redis", "database") and "latency_ms" in d:
        return ", ".join(filter(None, [d.get("dialect"), f"{d['latency_ms']} ms"]))
    if name == "scripts" and "library" in d:
        text = f"library {d['library']} {'loaded' if d['loaded'] else 'not loaded'}"
        others = d["other_libraries"]
        return text + (f"; other builds' libraries: {', '.join(others)}" if others else "")
    if name == "ledger_copy" and "consumers_alive" in d:
        text = f"{d['consumers_alive']} consumer(s) alive, {d['consumers_idle']} idle"
        if d["lag_events"] is not None:
            text += f"; lag {d['lag_events']} event(s), {d['lag_seconds']:.1f} s"
        for domain, lag in d.get("domains", {}).items():
            if lag["lag_events"] is not None:
                text += f"; {domain}: {lag['lag_events']} event(s), {lag['lag_seconds']:.1f} s" + (
                    "" if lag["state"] == "ok" else f" ({lag['state']})"
                )
        return text
    if name == "ledger_copy" and check.state == "absent":
        return "no consumer group yet: no worker has run on this namespace"
    return ""


def show(settings: Settings, report: health.Status) -> None:
    console.print(f"stocksync status: namespace {settings.namespace!r}")
    table = Table("dependency", "state", "required", "details", box=box.SIMPLE_HEAD)
    for name, check in report.readiness.checks.items():
        state = check.state if check.ok else f"[bold red]{check.state}[/]"
        table.add_row(name, state, "yes" if check.required else "no", summary(name, check))
    console.print(table)
    if report.now_ms:
        skus = ", ".join(report.regressed)
        more = report.regressed_count - len(report.regressed)
        console.print(
            f"regressed SKUs (writes refused until `stocksync rebuild`): "
            f"{report.regressed_count}" + (f": {skus}" if skus else "") + (" …" if more else "")
        )
        audit = report.audit
        if audit is None:
            console.print("last audit: none recorded on this namespace")
        else:
            console.print(
                f"last audit: {report.audit_age_seconds:.0f} s ago: {audit.positions} "
                f"position(s) compared, {audit.in_flight} in flight, {audit.drifting} drifting, "
                f"{audit.units} unit(s) of drift"
            )
            if len(report.audits) > 1:  # each domain's own line
                for domain, one in report.audits.items():
                    console.print(
                        f"  {domain}: {one.positions} compared, {one.drifting} drifting, "
                        f"{one.units} unit(s)"
                    )
    console.print("ready" if report.readiness.ready else "[bold red]NOT READY[/]")


def status(
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Readiness of Redis, the database, the scripts and the ledger copy (with its lag), the
    frozen SKUs and the newest audit; exit 1 when not ready."""
    settings = Settings()
    report = anyio.run(gather, settings)
    if as_json:
        body: dict[str, Any] = report.as_json()
        typer.echo(json.dumps(body, indent=2))
    else:
        show(settings, report)
    if not report.readiness.ready:
        raise typer.Exit(code=1)
