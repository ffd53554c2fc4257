"""``stocksync cluster``: where each domain lives, and moving a domain to another node."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from redis.asyncio import RedisCluster
from rich import box
from rich.console import Console
from rich.table import Table

from stocksync.cli.runtime import run_with_store
from stocksync.config import Settings
from stocksync.store.domain_moves import DomainMove, MoveRefused, freeze, move_domain, unfreeze
from stocksync.store.domain_status import DomainStatus, domain_statuses
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_copy import GROUP as LEDGER_GROUP

cluster_app = typer.Typer(help="Stock domains on a Redis/Valkey Cluster.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)


@cluster_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Every domain with its hash slot, the node serving it (and its replicas) or
    "standalone", and how far the ledger copy is behind its outbox."""

    async def job(store: RedisStockStore) -> list[DomainStatus]:
        return await domain_statuses(store, group=LEDGER_GROUP)

    found = run_with_store(Settings(), job)
    if as_json:
        print(json.dumps([d.as_dict() for d in found], indent=2))
        return
    table = Table(box=box.SIMPLE)
    for column in ("domain", "locations", "slot", "node", "replicas", "outbox lag", "state"):
        table.add_column(column)
    for d in found:
        lag = (
            "no ledger group"
            if d.outbox_entries is None
            else f"{d.outbox_entries} events, {d.outbox_seconds or 0:.1f} s"
        )
        table.add_row(
            d.domain,
            str(d.locations),
            str(d.slot),
            d.node,
            ", ".join(d.replicas) or "-",
            lag,
            "FROZEN (moving)" if d.frozen else "ok",
        )
    console.print(table)


def _cluster_of(store: RedisStockStore) -> RedisCluster:
    client: Any = store.client
    if not isinstance(client, RedisCluster):
        raise MoveRefused("not a cluster: set STOCKSYNC_REDIS_CLUSTER=true and a seed node")
    return client


@cluster_app.command("move-domain")
def move_domain_command(
    domain: Annotated[str, typer.Argument(help="the stock domain to move")],
    to: Annotated[str, typer.Option("--to", help="HOST:PORT of the primary to move it to")],
) -> None:
    """Move a domain's slot to another primary: freeze, migrate every key (meta last), hand
    the slot over, unfreeze. Calls on the domain answer 503 domain_moving meanwhile."""

    async def job(store: RedisStockStore) -> DomainMove:
        return await move_domain(_cluster_of(store), store, domain, to, progress=console.print)

    try:
        moved = run_with_store(Settings(), job)
    except (MoveRefused, ValueError) as exc:
        err.print(f"[red]not moved:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"Domain {domain} (slot {moved.slot}) moved from {moved.source} to {moved.target}: "
        f"{moved.keys} keys; moved with it: {', '.join(moved.frozen_domains)}"
    )


@cluster_app.command("freeze")
def freeze_command(domain: Annotated[str, typer.Argument(help="the stock domain")]) -> None:
    """Refuse every call on a domain (503 domain_moving), e.g. around a manual reshard."""
    run_with_store(Settings(), lambda store: freeze(store, domain))
    console.print(f"{domain} is frozen: every call on it is refused until `cluster unfreeze`.")


@cluster_app.command("unfreeze")
def unfreeze_command(domain: Annotated[str, typer.Argument(help="the stock domain")]) -> None:
    """Accept calls on a frozen domain again."""
    run_with_store(Settings(), lambda store: unfreeze(store, domain))
    console.print(f"{domain} accepts calls again.")
