"""A real `stocksync serve` in a subprocess, for tests that go through uvicorn and HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx

from tests.support.ports import free_port

STOP_GRACE_SECONDS = 15


def stocksync_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "stocksync.cli", *args]


@dataclass(frozen=True)
class ServeEnv:
    """The environment a `stocksync` command of one test deployment runs with."""

    env: dict[str, str]
    data_dir: Path

    def create_key(self, name: str, scopes: str, locations: str | None = None) -> str:
        more = ["--locations", locations] if locations else []
        created = subprocess.run(
            stocksync_cli("keys", "create", "--name", name, "--scopes", scopes, *more),
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return created.stdout.strip()


def serve_env(redis_url: str, data_dir: Path, label: str) -> ServeEnv:
    """A deployment of its own: the test Redis, SQLite in ``data_dir``, a fresh namespace."""
    env = {
        **os.environ,
        "STOCKSYNC_REDIS_URL": redis_url,
        "STOCKSYNC_DATA_DIR": str(data_dir),
        "STOCKSYNC_NAMESPACE": label + uuid.uuid4().hex[:8],
    }
    return ServeEnv(env, data_dir)


@contextmanager
def running_serve(deployment: ServeEnv, *args: str) -> Iterator[str]:
    """Start `stocksync serve` (with ``args``) on a free port, wait until /readyz answers;
    yields its URL. Its output is in ``serve.log`` in the data dir."""
    with serve_process(deployment, *args) as (url, _):
        yield url


@contextmanager
def serve_process(
    deployment: ServeEnv, *args: str, worker_metrics_port: int = 0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`running_serve` that also yields the process; its workers process serves no
    /metrics unless ``worker_metrics_port`` is given (no port to collide on)."""
    port = free_port()
    log = deployment.data_dir / "serve.log"
    metrics = ["--worker-metrics-port", str(worker_metrics_port)]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            stocksync_cli("serve", "--port", str(port), *metrics, *args),
            env=deployment.env,
            stdout=log_file,
            stderr=log_file,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded poll for the child process to start listening
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stocksync serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def child_processes(pid: int) -> dict[int, list[str]]:
    """The live children of ``pid`` and their command lines (read from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue  # exited while we looked
        if int(stat[1]) == pid and stat[0] != "Z":
            found[int(entry.name)] = cmdline.split("\0")
    return found


def is_running(pid: int) -> bool:
    """Whether ``pid`` is alive (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@asynccontextmanager
async def running_process(
    command: list[str], env: dict[str, str], **streams: Any
) -> AsyncIterator[anyio.abc.Process]:
    """A `stocksync` command in a subprocess for the block; stopped with SIGTERM after it, and
    killed if it has not exited within STOP_GRACE_SECONDS (so a stuck one cannot hang the suite)."""
    process = await anyio.open_process(command, env=env, **streams)
    async with process:
        try:
            yield process
        finally:
            process.terminate()
            with anyio.move_on_after(STOP_GRACE_SECONDS):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
