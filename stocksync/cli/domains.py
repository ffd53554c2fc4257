"""``stocksync domains``: the stock domains of a namespace, and moving a location between them."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from stocksync.cli.runtime import run_with_store
from stocksync.config import Settings
from stocksync.store.base import acting_as
from stocksync.store.domain_moves import LocationMove, MoveRefused, move_location
from stocksync.store.domain_status import STANDALONE, DomainStatus, domain_statuses
from stocksync.store.redis_store import RedisStockStore

domains_app = typer.Typer(help="Stock domains (DESIGN rule 2).", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)

AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]


@domains_app.command("list")
def list_domains(as_json: AsJson = False) -> None:
    """Each domain with its locations count and, on a cluster, its slot and node."""

    async def job(store: RedisStockStore) -> list[DomainStatus]:
        return await domain_statuses(store)

    found = run_with_store(Settings(), job)
    if as_json:
        print(json.dumps([d.as_dict() for d in found], indent=2))
        return
    table = Table(box=box.SIMPLE)
    for column in ("domain", "locations", "slot", "node"):
        table.add_column(column)
    for d in found:
        table.add_row(d.domain, str(d.locations), str(d.slot), d.node)
    console.print(table)
    if found and found[0].node == STANDALONE:
        console.print("standalone server: every domain is on it (slots matter on a cluster)")


@domains_app.command("move-location")
def move_location_command(
    location_id: Annotated[str, typer.Argument(help="the location to move")],
    domain: Annotated[str, typer.Argument(help="the stock domain it moves to")],
) -> None:
    """Move a location with its stock to another domain (offline: refused while it has active
    holds). Safe to run again after an interruption: it finishes the move."""

    async def job(store: RedisStockStore) -> LocationMove:
        with acting_as("cli:domains"):
            return await move_location(store, location_id, domain, progress=console.print)

    try:
        moved = run_with_store(Settings(), job)
    except (MoveRefused, ValueError) as exc:
        err.print(f"[red]not moved:[/red] {exc}")
        raise typer.Exit(1) from exc
    if moved.already_done:
        console.print(f"{location_id} is already in domain {domain}: nothing to do.")
        return
    console.print(
        f"Moved {location_id} from {moved.source} to {moved.target} "
        f"({moved.positions} positions). Running processes correct their cached route on "
        "their next call there."
    )
