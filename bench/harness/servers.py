"""The servers a run starts and always stops: the bundled valkey-server and the API processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import redis

from bench.harness.cpu import PidSource, command_line, session_pids
from stocksync.store.embedded import EmbeddedRedis

HOST = "127.0.0.1"
HEALTH_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on the loopback interface that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def stocksync_command() -> str:
    """The ``stocksync`` entry point next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "stocksync"
    if beside.exists():
        return str(beside)
    found = shutil.which("stocksync")
    if found is None:
        raise RuntimeError("the stocksync command is not installed (pip install -e .)")
    return found


def stop_session(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM a process started with ``start_new_session`` and its whole session, then reap.

    The leader is reaped last, so its pid (the process group id) cannot be reused meanwhile.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while session_pids(process.pid, live=True) and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded wait for a graceful exit
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever did not stop in time
    process.wait()


class BenchRedis:
    """An EmbeddedRedis on a free loopback port with the AOF on, in its own temporary dir."""

    def __init__(self, appendfsync: str, parent_dir: Path | None = None) -> None:
        self.appendfsync = appendfsync
        self.dir = Path(tempfile.mkdtemp(prefix=f"stocksync-bench-{appendfsync}-", dir=parent_dir))
        self.server = EmbeddedRedis(
            self.dir / "redis", port=free_port(), appendonly=True, appendfsync=appendfsync
        )
        self.url = ""

    @property
    def pid(self) -> int:
        return self.server.process.pid if self.server.process else 0

    def __enter__(self) -> Self:
        try:
            self.url = self.server.start()
        except BaseException:  # including Ctrl-C while waiting for PING: stop what started
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.server.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def info(self, section: str) -> dict[str, object]:
        client = redis.Redis.from_url(self.url, decode_responses=True)
        try:
            found: dict[str, object] = client.info(section)
            return found
        finally:
            client.close()

    def reset_stats(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            client.config_resetstat()
        finally:
            client.close()


class ApiServer:
    """``stocksync serve`` as a subprocess on a free port, with its own session (process group).

    ``key`` is an all-scopes API key created in the same data dir before the server starts.
    """

    def __init__(
        self,
        redis_url: str,
        data_dir: Path,
        workers: int,
        key: str,
        keep_log: Path | None = None,
        database_url: str | None = None,
    ) -> None:
        self.workers = workers
        self.keep_log = keep_log  # where to copy the server's log when it stops
        self.key = key
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.env = api_env(redis_url, data_dir, database_url)
        self.log_path = data_dir / f"serve-w{workers}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        # Where the workers process serves /metrics (0 = not served: most sections don't read it)
        self.worker_metrics_port = 0

    def pids(self) -> list[int]:
        """The API processes: serve, its uvicorn workers (and helpers), not the workers process."""
        if self.process is None:
            return []
        return [p for p in session_pids(self.process.pid) if not is_workers_process(p)]

    def workers_pids(self) -> list[int]:
        """The process serve runs the workers in (none when they run inside the API)."""
        if self.process is None:
            return []
        return [p for p in session_pids(self.process.pid) if is_workers_process(p)]

    def cpu_groups(self, redis: BenchRedis) -> dict[str, PidSource]:
        """Every stocksync process of this server by role, for a CpuWindow."""
        return {"api": self.pids, "workers": self.workers_pids, "redis": lambda: [redis.pid]}

    def __enter__(self) -> Self:
        command = [stocksync_command(), "serve", "--host", HOST, "--port", str(self.port)]
        command += ["--workers", str(self.workers)]
        command += ["--worker-metrics-port", str(self.worker_metrics_port)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                env=self.env,
                cwd=self.log_path.parent,  # away from the repo's .env: measure the defaults
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None:
            stop_session(self.process)
            self.process = None
            if self.keep_log is not None:
                self.keep_log.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.log_path, self.keep_log)

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"stocksync serve exited: {self._log_tail()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)  # bounded poll of a child process for readiness
        raise RuntimeError(
            f"/healthz did not answer in {HEALTH_TIMEOUT_S:.0f} s: {self._log_tail()}"
        )

    def status(self) -> str:
        """For error messages: is the server still running, and the end of its log."""
        if self.process is None:
            return "server not started"
        code = self.process.poll()
        state = "running" if code is None else f"exited with {code}"
        return f"stocksync serve {state}; log: {self._log_tail()}"

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10.0)

    def seed(self, location_id: str, sku: str, on_hand: int) -> None:
        """Create the hot location and its stock through the API."""
        location = {"name": "Bench store", "kind": "store", "lat": 52.52, "lon": 13.40}
        with self.client() as client:
            client.put(
                f"/v1/locations/{location_id}", json={**location, "pickup": True, "ship": True}
            ).raise_for_status()
            client.put(
                f"/v1/stock/{location_id}/{sku}", json={"on_hand": on_hand}
            ).raise_for_status()


def is_workers_process(pid: int) -> bool:
    """``stocksync worker`` (as serve starts it: ``python -m stocksync.cli worker ...``)."""
    return command_line(pid)[1:4] == ["-m", "stocksync.cli", "worker"]


def api_env(redis_url: str, data_dir: Path, database_url: str | None = None) -> dict[str, str]:
    """The server's environment: ledger in SQLite in ``data_dir`` unless ``database_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKSYNC_")}
    env.update(STOCKSYNC_REDIS_URL=redis_url, STOCKSYNC_DATA_DIR=str(data_dir))
    # The benchmarks drive all their load through one key to find the engine's ceiling: the
    # per-key rate limit stays on (its cost is measured) but far above any rate they reach.
    env.update(STOCKSYNC_RATE_LIMIT_PER_KEY_PER_SECOND=str(10**9))
    if database_url:
        env.update(STOCKSYNC_DATABASE_URL=database_url)
    return env


def create_api_key(redis_url: str, data_dir: Path, database_url: str | None = None) -> str:
    """``stocksync keys create`` with the bench environment; the key is its first stdout line."""
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [stocksync_command(), "keys", "create", "--name", "bench"]
    command += ["--scopes", "read,reserve,stock:write,admin"]
    done = subprocess.run(
        command,
        env=api_env(redis_url, data_dir, database_url),
        cwd=data_dir,
        capture_output=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"stocksync keys create failed: {done.stderr.decode()[-2000:]}")
    return done.stdout.decode().splitlines()[0].strip()
