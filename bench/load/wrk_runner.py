"""Runs wrk with one of the Lua scripts in ``wrk/`` and reads back the JSON line it prints."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.harness.config import HOT_LOCATION, HOT_SKU
from bench.harness.cpu import CpuSample, CpuWindow, children_cpu_seconds
from bench.harness.servers import ApiServer, BenchRedis
from bench.harness.stats import merged_percentile

WRK_DIR = Path(__file__).parent / "wrk"
WRK_THREADS = 1  # one epoll thread handles the load; a second would take CPU from the server


@dataclass(frozen=True)
class WrkResult:
    """One wrk run, or several added together (their latency distributions pooled)."""

    seconds: float
    requests: int
    ok: int  # 201 for a reserve, 200 for healthz
    released: int  # 200 answers to releases (pair.lua)
    failed: int  # other statuses
    socket_errors: int
    max_ms: float
    runs: tuple[tuple[int, tuple[float, ...]], ...]  # (requests, 1000 quantiles in ms) per run
    cpu: CpuSample

    @property
    def errors(self) -> int:
        return self.failed + self.socket_errors

    def percentile(self, q: float) -> float:
        return merged_percentile(self.runs, q)

    def __add__(self, other: WrkResult) -> WrkResult:
        return WrkResult(
            self.seconds + other.seconds,
            self.requests + other.requests,
            self.ok + other.ok,
            self.released + other.released,
            self.failed + other.failed,
            self.socket_errors + other.socket_errors,
            max(self.max_ms, other.max_ms),
            self.runs + other.runs,
            self.cpu + other.cpu,
        )


def find_wrk() -> str | None:
    """The wrk binary: on PATH, else /usr/bin/wrk; None when neither exists."""
    found = shutil.which("wrk") or "/usr/bin/wrk"
    return found if Path(found).exists() else None


def wrk_binary() -> str:
    found = find_wrk()
    if found is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    return found


def run_wrk(
    server: ApiServer,
    redis: BenchRedis,
    script: str,
    path: str,
    connections: int,
    seconds: int,
    tag: str,
) -> WrkResult:
    command = [wrk_binary(), f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s"]
    command += ["--timeout", "10s", "-s", str(WRK_DIR / script), server.base_url + path]
    command += ["--", server.key, HOT_SKU, HOT_LOCATION, tag]
    window = CpuWindow(server.cpu_groups(redis)).start()
    wrk_cpu = children_cpu_seconds()
    done = subprocess.run(
        command, capture_output=True, timeout=seconds + 60, check=False, start_new_session=True
    )
    cpu = window.stop(children_cpu_seconds() - wrk_cpu)
    lines = [ln for ln in done.stdout.decode().splitlines() if ln.startswith("BENCHJSON ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"wrk failed ({done.returncode}): {done.stderr.decode()[-2000:]}; {server.status()}"
        )
    raw = json.loads(lines[-1].removeprefix("BENCHJSON "))
    return WrkResult(
        seconds=raw["duration_us"] / 1e6,
        requests=raw["requests"],
        ok=raw["ok"],
        released=raw["released"],
        failed=raw["failed"],
        socket_errors=sum(raw[k] for k in ("connect", "read", "write", "timeout")),
        max_ms=raw["max_us"] / 1000,
        runs=((raw["requests"], tuple(v / 1000 for v in raw["quantiles_us"])),),
        cpu=cpu,
    )
