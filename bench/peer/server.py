"""Starts the row-lock peer on a throw-away PostgreSQL database and always stops it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, LiteralString, Self

import httpx
import psycopg

from bench.harness import pg
from bench.harness.cpu import session_pids
from bench.harness.pg import PG_HOST, PG_PORT, PG_USER, TempDatabase
from bench.harness.servers import HEALTH_TIMEOUT_S, HOST, free_port, stop_session

TOKEN = "baseline-bench-token"
POOL_SIZE = 8  # per worker: PostgreSQL on 2 cores gains nothing from more active backends


class PeerServer:
    """``uvicorn --factory bench.peer.app:create_app`` with ``workers`` processes."""

    def __init__(self, workers: int, log_dir: Path, pool_size: int = POOL_SIZE) -> None:
        self.workers = workers
        self.pool_size = pool_size
        self.key = TOKEN
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.database = TempDatabase()
        self.dsn = ""
        self.log_path = log_dir / f"peer-w{workers}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        try:
            self.database.__enter__()
            self.dsn = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={self.database.name}"
            schema = resources.files("bench.peer").joinpath("schema.sql").read_text()
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(schema)
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        command = [sys.executable, "-m", "uvicorn", "--factory", "bench.peer.app:create_app"]
        command += ["--host", HOST, "--port", str(self.port), "--workers", str(self.workers)]
        command += ["--log-level", "warning", "--no-access-log"]
        env = {"BASELINE_DSN": self.dsn, "BASELINE_TOKEN": TOKEN}
        env["BASELINE_POOL_SIZE"] = str(self.pool_size)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                env={**_inherited_env(), **env},
                cwd=Path(__file__).parents[2],  # so ``bench`` imports from this checkout
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"row-lock peer exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # bounded poll of a child process for readiness
        raise RuntimeError(f"row-lock peer did not start: {self.log_path.read_text()[-2000:]}")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.process is not None:
                stop_session(self.process)
                self.process = None
        finally:
            self.database.__exit__(None, None, None)

    def pids(self) -> list[int]:
        return session_pids(self.process.pid) if self.process else []

    def sql(self, query: LiteralString, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the peer's database (seeding, reading back)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def seed(self, location_id: str, sku: str, on_hand: int) -> None:
        self.sql(
            "INSERT INTO stock (sku, location_id, on_hand) VALUES (%s, %s, %s)"
            " ON CONFLICT (sku, location_id) DO UPDATE SET on_hand = EXCLUDED.on_hand",
            (sku, location_id, on_hand),
        )

    def seed_grid(self, skus: list[str], locations: list[str], on_hand: int) -> None:
        """Every SKU at every location, in one statement; then fresh planner statistics."""
        self.sql(
            "INSERT INTO stock (sku, location_id, on_hand)"
            " SELECT s, l, %s FROM unnest(%s::text[]) s CROSS JOIN unnest(%s::text[]) l",
            (on_hand, skus, locations),
        )
        self.sql("VACUUM ANALYZE stock")

    def held(self, location_id: str, sku: str) -> tuple[int, int]:
        """(units allocated, active reservations) at a position, read from the database."""
        rows = self.sql(
            "SELECT s.allocated, count(r.reservation_id) FROM stock s"
            " LEFT JOIN reservation_line l ON l.stock_id = s.id"
            " LEFT JOIN reservation r ON r.reservation_id = l.reservation_id"
            " AND r.state IN ('held', 'confirmed')"
            " WHERE s.sku = %s AND s.location_id = %s GROUP BY s.allocated",
            (sku, location_id),
        )
        allocated, lines = rows[0]
        return int(allocated), int(lines)


def _inherited_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BASELINE_")}


def peer_fsync() -> str:
    """The peer's durability setting, for the table's fsync column."""
    return "synchronous_commit " + pg.show("synchronous_commit")["synchronous_commit"]


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes (its backends do the peer's work)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
