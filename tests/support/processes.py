"""The crash tests' stack of child processes: redis-server, ``stocksync serve`` (API only) and
``stocksync worker``, each in a session of its own; started, waited for, SIGKILLed, restarted;
and the SQL ledger they share (a SQLite file, or a PostgreSQL database of the test's own).

The Redis side is a :class:`RedisBackend`: a standalone redis-server of the stack's own here
(:class:`StandaloneRedis`), or a cluster (``tests.support.cluster_stack``), so the same load and
the same checks run against both; the flows' locations live in ``Stack.domain``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError, ResponseError
from sqlalchemy.engine import Engine

from stocksync.domain.model import DEFAULT_DOMAIN
from stocksync.ledger.db import make_engine
from stocksync.store.embedded import EmbeddedRedis
from stocksync.store.keys import Keys
from tests.support.ports import free_port
from tests.support.serve import stocksync_cli

START_TIMEOUT = 45.0  # a child process to answer (python start-up is ~2-3 s on 2 cores)
POLL_SECONDS = 0.1
KILL_WINDOW = 20.0  # to catch the worker holding unacknowledged entries
# A killed ledger writer's unacknowledged entries are claimed by the new one once idle this
# long. One writer runs at a time here, so a short window cannot make two writers race; the
# production default (30 s) would only make the worker test wait.
CLAIM_IDLE_SECONDS = 3


class Processes:
    """Every child process a test starts; whatever is still running is killed at teardown."""

    def __init__(self) -> None:
        self._started: list[subprocess.Popen[bytes]] = []

    def track(self, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self._started.append(process)
        return process

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL, by pid (each child is the leader of a session of its own)."""
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)

    def kill_all(self) -> None:
        for process in reversed(self._started):
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.kill(process)


class RedisBackend(Protocol):
    """Where a stack's Redis data lives, and what killing "redis" means there."""

    @property
    def url(self) -> str:
        """What ``STOCKSYNC_REDIS_URL`` names (a cluster's seed node)."""
        ...

    def env(self) -> dict[str, str]:
        """Settings the stack's processes need beyond the URL."""
        ...

    def client(self) -> Redis | RedisCluster:
        """A client (decode_responses) for the test's own reads; the caller closes it."""
        ...

    async def kill_and_recover(self) -> None:
        """SIGKILL the server holding the stack's domain; return once a server answers for it."""
        ...

    async def restore(self) -> None:
        """Bring back whatever :meth:`kill_and_recover` left down (once the load is over)."""
        ...


class StandaloneRedis:
    """A redis-server of the stack's own (AOF, ``appendfsync always``): killed, it is started
    again on the same data directory and port and loads its AOF."""

    def __init__(self, root: Path, processes: Processes) -> None:
        self.server = EmbeddedRedis(root, port=free_port(), appendonly=True, appendfsync="always")
        self.processes = processes

    @property
    def url(self) -> str:
        return self.server.url

    def env(self) -> dict[str, str]:
        return {}

    def client(self) -> Redis:
        return Redis.from_url(self.url, decode_responses=True)

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start)
        assert self.server.process is not None
        self.processes.track(self.server.process)

    async def kill_and_recover(self) -> None:
        assert self.server.process is not None
        Processes.kill(self.server.process)
        self.server = EmbeddedRedis(
            self.server.data_dir,
            port=self.server.port,
            appendonly=True,
            appendfsync="always",
        )
        await self.start()
        await wait_redis_ping(self.url)

    async def restore(self) -> None:
        """Nothing: the restarted server is already back."""


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    namespace: str
    redis: RedisBackend
    api_port: int
    key: str
    engine: Engine
    processes: Processes
    api: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    logs: Counter[str] = field(default_factory=Counter)
    domain: str = DEFAULT_DOMAIN  # the flows' locations are in it

    @property
    def keys(self) -> Keys:
        return Keys(self.namespace, self.domain)

    @property
    def ledger_namespace(self) -> str:
        """The ledger's namespace of the domain's events."""
        return self.keys.ledger_namespace

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def spawn(self, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        self.logs[name] += 1
        log = self.root / f"{name}-{self.logs[name]}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                stocksync_cli(*args),
                env=self.env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.processes.track(process), log

    def log_tails(self) -> str:
        logs = sorted(self.root.glob("*.log"))
        return "\n".join(f"--- {log.name}\n{tail(log, 1500)}" for log in logs)

    async def start_api(self) -> None:
        self.api, log = self.spawn("api", "serve", "--port", str(self.api_port))
        await wait_http_ready(self.url, self.api, log)

    async def start_worker(self) -> None:
        self.worker, log = self.spawn("worker", "worker")
        # The worker prints this line after its start-up regression check, before running.
        await wait_for_log_line(log, "stocksync worker on namespace", self.worker)


async def wait_http_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Bounded poll until GET /readyz answers 200 (the child exiting fails at once)."""
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise AssertionError(f"the API exited with {process.returncode}:\n{tail(log)}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the API was not ready in {START_TIMEOUT}s:\n{tail(log)}")
            await asyncio.sleep(POLL_SECONDS)  # polling a child process for readiness


async def wait_for_log_line(log: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while text not in tail(log, chars=1_000_000):
        if process.poll() is not None:
            raise AssertionError(f"the process exited with {process.returncode}:\n{tail(log)}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {text!r} in {START_TIMEOUT}s:\n{tail(log)}")
        await asyncio.sleep(POLL_SECONDS)  # polling a child process for readiness


async def wait_redis_ping(url: str) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    client = Redis.from_url(url, socket_timeout=1)
    try:
        while True:
            try:
                if await client.ping():
                    return
            except RedisError:  # refused while down, BusyLoadingError while loading the AOF
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("redis did not answer PING")
            await asyncio.sleep(POLL_SECONDS)  # polling a child process for readiness
    finally:
        await client.aclose()


@asynccontextmanager
async def running_stack(
    root: Path,
    processes: Processes,
    database_url: str,
    redis: RedisBackend | None = None,
    namespace: str | None = None,
    domain: str = DEFAULT_DOMAIN,
) -> AsyncIterator[Stack]:
    """A stack of its own in ``root``: ``redis`` (default: a redis-server of its own, AOF,
    ``appendfsync always``, on a free port), an admin key in the fresh, empty ledger at
    ``database_url``, the API and the worker; all killed on exit."""
    if redis is None:
        standalone = StandaloneRedis(root / "redis", processes)
        await standalone.start()
        redis = standalone
    namespace = namespace or "crash" + uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "STOCKSYNC_REDIS_URL": redis.url,
        "STOCKSYNC_DATABASE_URL": database_url,
        "STOCKSYNC_DATA_DIR": str(root / "data"),
        "STOCKSYNC_NAMESPACE": namespace,
        "STOCKSYNC_RUN_WORKERS": "false",
        "STOCKSYNC_APPENDFSYNC": "always",
        "STOCKSYNC_REAPER_INTERVAL_SECONDS": "0.5",
        "STOCKSYNC_REGRESSION_CHECK_SECONDS": "2",
        "STOCKSYNC_LEDGER_CLAIM_IDLE_SECONDS": str(CLAIM_IDLE_SECONDS),
        **redis.env(),
    }
    # Creating the key also brings the schema to head before two processes open the database.
    created = await asyncio.to_thread(
        subprocess.run,
        stocksync_cli("keys", "create", "--name", "crash", "--scopes", "admin"),
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    engine = make_engine(database_url)
    stack = Stack(
        root=root,
        env=env,
        namespace=namespace,
        redis=redis,
        api_port=free_port(),
        key=created.stdout.strip().splitlines()[0],
        engine=engine,
        processes=processes,
        domain=domain,
    )
    try:
        await asyncio.gather(stack.start_api(), stack.start_worker())
        yield stack
    finally:
        processes.kill_all()
        engine.dispose()


async def kill_and_restart(stack: Stack, victim: str) -> int:
    """SIGKILL ``victim`` and restart it; returns the outbox entries a killed worker held."""
    held = 0
    if victim == "api":
        assert stack.api is not None
        Processes.kill(stack.api)
        await stack.start_api()
    elif victim == "worker":
        held = await kill_worker_holding_entries(stack)
        await stack.start_worker()
    elif victim == "redis":
        await stack.redis.kill_and_recover()
    else:
        raise ValueError(victim)
    return held


async def ledger_pending(client: Redis | RedisCluster, outbox: str) -> dict[str, Any]:
    """XPENDING of the ledger group on ``outbox``; no entries while the group does not exist
    yet (a worker starts copying a new domain's outbox within its rescan period)."""
    try:
        summary: dict[str, Any] = await client.xpending(outbox, "ledger")
    except ResponseError as exc:
        if not str(exc).startswith("NOGROUP"):
            raise
        return {"pending": 0, "consumers": [], "group": False}
    return {**summary, "group": True}


async def kill_worker_holding_entries(stack: Stack) -> int:
    """SIGKILL the worker while it holds outbox entries it read but has not acknowledged
    (read, SQL write not yet committed or not yet acknowledged): freeze it (SIGSTOP), look at
    its pending entries, and kill it if there are any, else let it go on and look again
    (bounded). Returns how many entries it held when it was killed."""
    worker = stack.worker
    assert worker is not None
    consumer = f"{socket.gethostname()}-{worker.pid}"  # stocksync.workers.supervisor
    outbox = stack.keys.outbox
    client = stack.redis.client()
    deadline = asyncio.get_running_loop().time() + KILL_WINDOW
    try:
        while True:
            os.kill(worker.pid, signal.SIGSTOP)
            summary = await ledger_pending(client, outbox)
            held = {c["name"]: int(c["pending"]) for c in summary["consumers"]}.get(consumer, 0)
            if held > 0 or asyncio.get_running_loop().time() > deadline:
                Processes.kill(worker)
                return held
            os.kill(worker.pid, signal.SIGCONT)
            await asyncio.sleep(0.002)  # let it run a little before looking again
    finally:
        await client.aclose()
