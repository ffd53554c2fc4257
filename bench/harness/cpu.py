"""CPU accounting per role (API server, Redis, load generator, everything else) from /proc.

Shares are in percent of one core, so a 2-core machine has 200 % in total.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

_TICK = float(os.sysconf("SC_CLK_TCK"))
CORES = os.cpu_count() or 1


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()  # fields from "state" on (the name may hold spaces)


def process_cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds consumed so far by the live processes among ``pids``."""
    total = 0.0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def command_line(pid: int) -> list[str]:
    """A process's argv ([] once it has exited)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


def session_pids(session_id: int, *, live: bool = False) -> list[int]:
    """Every process in a session (a server started with ``start_new_session`` and its workers).

    With ``live``, zombies (exited, not yet reaped) are left out.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is None or int(fields[3]) != session_id:
                continue
            if not (live and fields[0] == "Z"):
                found.append(int(entry.name))
    return found


def system_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine, summed over cores.

    Busy is user + nice + system + irq + softirq; steal is time the hypervisor gave to others.
    """
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(v) for v in stat.readline().split()[1:9]
        )
    return (user + nice + system + irq + softirq) / _TICK, steal / _TICK


def children_cpu_seconds() -> float:
    """CPU seconds of this process's terminated, waited-for children (e.g. a finished wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


PidSource = Callable[[], list[int]]


def no_pids() -> list[int]:
    """A role with no process (a system whose workers run inside its API, or not at all)."""
    return []


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds per role (and per process, as "role:pid") and machine-wide busy seconds."""

    wall: float = 0.0
    busy: float = 0.0
    steal: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    processes: dict[str, float] = field(default_factory=dict)

    def __add__(self, other: CpuSample) -> CpuSample:
        return CpuSample(
            self.wall + other.wall,
            self.busy + other.busy,
            self.steal + other.steal,
            _sum(self.seconds, other.seconds),
            _sum(self.processes, other.processes),
        )

    def shares(self) -> dict[str, float]:
        """Percent of one core per role, plus ``other`` (the rest of the machine's busy time)."""
        wall = max(self.wall, 1e-9)
        shares = {name: 100 * value / wall for name, value in self.seconds.items()}
        shares["other"] = max(0.0, 100 * self.busy / wall - sum(shares.values()))
        shares["steal"] = 100 * self.steal / wall
        return {name: round(value, 1) for name, value in shares.items()}

    def process_shares(self, role: str) -> list[float]:
        """Percent of one core of each process of ``role``, largest first."""
        wall = max(self.wall, 1e-9)
        found = [v for k, v in self.processes.items() if k.split(":")[0] == role]
        return sorted((round(100 * v / wall, 1) for v in found), reverse=True)


def _sum(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in a.keys() | b.keys()}


def _per_pid(pids: Iterable[int]) -> dict[int, float]:
    return {pid: process_cpu_seconds([pid]) for pid in pids}


@dataclass
class CpuWindow:
    """Measures the CPU time of named process groups over a wall-clock window.

    ``load`` (the load generator) is not read from /proc: the caller passes the generator's CPU
    seconds to :meth:`stop`, since it may be a child that has exited by the end of the window.
    A process that exits inside the window loses its share.
    """

    groups: dict[str, PidSource]
    _start_wall: float = 0.0
    _start_system: tuple[float, float] = (0.0, 0.0)
    _start: dict[str, dict[int, float]] = field(default_factory=dict)

    def start(self) -> CpuWindow:
        self._start = {name: _per_pid(src()) for name, src in self.groups.items()}
        self._start_system = system_seconds()
        self._start_wall = time.monotonic()
        return self

    def stop(self, load_cpu_seconds: float) -> CpuSample:
        processes = {}
        for name, src in self.groups.items():
            before = self._start[name]
            for pid, now in _per_pid(src()).items():
                processes[f"{name}:{pid}"] = now - before.get(pid, 0.0)
        seconds = {
            name: sum(v for k, v in processes.items() if k.split(":")[0] == name)
            for name in self.groups
        }
        seconds["load"] = load_cpu_seconds
        wall = time.monotonic() - self._start_wall
        busy, steal = system_seconds()
        busy0, steal0 = self._start_system
        return CpuSample(wall, busy - busy0, steal - steal0, seconds, processes)


def wait_idle(
    pids: PidSource, timeout: float, busy_share: float = 0.1, window: float = 0.5
) -> float:
    """Wait until ``pids`` use less than ``busy_share`` of a core over ``window`` seconds.

    A server that runs its workers in-process audits the whole catalogue when it starts; a
    measurement should not overlap that. Returns the seconds waited (``timeout`` at most).
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = process_cpu_seconds(pids())
        time.sleep(window)  # one sampling window of the servers' CPU
        if process_cpu_seconds(pids()) - before < busy_share * window:
            break
    return time.monotonic() - started
