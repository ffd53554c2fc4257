"""A Valkey Cluster of any size for the ``cluster`` section, from the bundled server binary.

``valkey-cli --cluster create`` refuses fewer than 3 primaries, and the benchmark compares 1, 2
and 3, so the cluster is built by hand: each primary takes an equal range of the 16384 slots
(``CLUSTER ADDSLOTSRANGE``), every node meets the first (``CLUSTER MEET``), each replica follows
its primary (``CLUSTER REPLICATE``). Nodes run like the standalone server they are compared
with: AOF on with the same ``appendfsync``, no RDB snapshots, on loopback.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis

from bench.harness.servers import HOST, free_port
from stocksync.store.embedded import bundled_server_binary

SLOTS = 16384
START_TIMEOUT_S = 60.0
POLL_S = 0.05


@dataclass
class Node:
    port: int
    bus_port: int
    dir: Path
    primary: bool
    follows: int = 0  # a replica: its primary's port
    process: subprocess.Popen[bytes] | None = None
    node_id: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, decode_responses=True, socket_timeout=10)

    def command(self, *args: Any) -> Any:
        with self.client() as client:
            return client.execute_command(*args)

    def info(self, section: str) -> dict[str, Any]:
        with self.client() as client:
            found: dict[str, Any] = client.info(section)
            return found


def _wait(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(POLL_S)  # polling the servers' state, bounded by the deadline
    raise RuntimeError(f"cluster start: {what} within {START_TIMEOUT_S} s")


def _answers(node: Node) -> Callable[[], bool]:
    return lambda: bool(node.command("PING"))


def _knows(node: Node, count: int) -> Callable[[], bool]:
    return lambda: len(str(node.command("CLUSTER", "NODES")).splitlines()) == count


class BenchCluster:
    """``primaries`` shards, ``replicas`` replicas each; a context manager that always stops
    what it started and removes its files."""

    def __init__(
        self, primaries: int, replicas: int, appendfsync: str, parent_dir: Path | None = None
    ) -> None:
        self.primaries = primaries
        self.replicas = replicas
        self.appendfsync = appendfsync
        self.dir = Path(tempfile.mkdtemp(prefix="stocksync-bench-cluster-", dir=parent_dir))
        self.nodes: list[Node] = []

    @property
    def seed_url(self) -> str:
        return f"redis://{HOST}:{self.nodes[0].port}"

    def primary_nodes(self) -> list[Node]:
        return [node for node in self.nodes if node.primary]

    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes]

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is None:
                    node.process.terminate()
            for node in self.nodes:
                if node.process is not None:
                    try:
                        node.process.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        node.process.kill()
                        node.process.wait(timeout=15)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _start(self) -> None:
        server = bundled_server_binary()
        for index in range(self.primaries * (1 + self.replicas)):
            node = Node(
                free_port(), free_port(), self.dir / f"node-{index}", index < self.primaries
            )
            node.dir.mkdir()
            self.nodes.append(node)
            node.process = subprocess.Popen(
                [
                    *(str(server), "--port", str(node.port), "--bind", HOST),
                    *("--dir", str(node.dir), "--cluster-enabled", "yes"),
                    *("--cluster-port", str(node.bus_port), "--cluster-config-file", "nodes.conf"),
                    *("--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", ""),
                    *("--daemonize", "no", "--logfile", str(node.dir / "server.log")),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for node in self.nodes:
            _wait(f"{node.port} answers PING", _answers(node))
            node.node_id = str(node.command("CLUSTER", "MYID"))
        share = SLOTS // self.primaries
        for i, node in enumerate(self.primary_nodes()):
            last = SLOTS - 1 if i == self.primaries - 1 else (i + 1) * share - 1
            node.command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.command("CLUSTER", "MEET", HOST, first.port, first.bus_port)
        everyone = len(self.nodes)
        for node in self.nodes:
            _wait(f"{node.port} knows every node", _knows(node, everyone))
        for index, node in enumerate(self.nodes[self.primaries :]):
            primary = self.primary_nodes()[index % self.primaries]
            node.primary = False
            node.follows = primary.port
            node.command("CLUSTER", "REPLICATE", primary.node_id)
        _wait("the cluster is ok", self._healthy)

    def _healthy(self) -> bool:
        for node in self.nodes:
            info = str(node.command("CLUSTER", "INFO"))
            if "cluster_state:ok" not in info:
                return False
            if not node.primary and node.info("replication").get("master_link_status") != "up":
                return False
        return True

    def slot_owner(self) -> dict[int, int]:
        """slot -> port of the primary that owns it."""
        owners: dict[int, int] = {}
        for start, end, primary, *_ in self.nodes[0].command("CLUSTER", "SLOTS"):
            for slot in range(int(start), int(end) + 1):
                owners[slot] = int(primary[1])
        return owners
