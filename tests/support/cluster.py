"""A real Valkey Cluster for tests: server processes from the embedded binary, on loopback.

``ValkeyCluster(tmp_dir, primaries=3, replicas=1).start()`` runs ``primaries * (1 + replicas)``
``valkey-server`` processes in cluster mode (AOF on, ``appendfsync always``, a short node
timeout so a failover takes a couple of seconds), joins them with ``valkey-cli --cluster
create`` and returns once every node reports ``cluster_state:ok`` and the same full slot map.
Its methods are synchronous (plain sockets): async tests call the slow ones through
``asyncio.to_thread`` so their own calls keep running meanwhile.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis

from stocksync.store.embedded import bundled_server_binary
from tests.support.ports import free_port

T = TypeVar("T")

HOST = "127.0.0.1"
NODE_TIMEOUT_MS = 1000  # failure detection; a failover follows within a few of these
WAIT_SECONDS = 60.0
POLL_SECONDS = 0.05
SLOTS = 16384


def wait_until(what: str, check: Callable[[], T | None], seconds: float = WAIT_SECONDS) -> T:
    """Poll ``check`` until it returns something other than None/False; fail after
    ``seconds`` naming ``what``. Connection errors count as "not yet"."""
    deadline = time.monotonic() + seconds
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result is not None and result is not False:
                return result
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"{what} within {seconds} s (last error: {last!r})")


@dataclass
class ClusterNodeProcess:
    """One valkey-server of the cluster, with its port, data dir and cluster node id."""

    port: int
    bus_port: int  # named, not port + 10000 (which may be taken, or past 65535)
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    node_id: str = ""
    _client: redis.Redis | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        """A plain (non-cluster) client of this node only."""
        if self._client is None:
            self._client = redis.Redis(
                host=HOST, port=self.port, decode_responses=True, socket_timeout=10
            )
        return self._client

    def command(self, *args: Any) -> Any:
        return self.client().execute_command(*args)

    def info(self, section: str) -> dict[str, Any]:
        found: dict[str, Any] = self.client().info(section)
        return found

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class ValkeyCluster:
    """``primaries`` shards of one primary and ``replicas`` replicas each, on loopback."""

    def __init__(self, tmp_dir: Path, primaries: int = 3, replicas: int = 1) -> None:
        self.tmp_dir = tmp_dir
        self.primaries = primaries
        self.replicas = replicas
        self.server = bundled_server_binary()
        self.cli = str(Path(self.server).parent / "valkey-cli")
        self._nodes: list[ClusterNodeProcess] = []
        self._map_before_kill: dict[int, list[int]] = {}

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> ValkeyCluster:
        try:
            for index in range(self.primaries * (1 + self.replicas)):
                port = free_port()
                data_dir = self.tmp_dir / f"node-{index}-{port}"
                data_dir.mkdir(parents=True)
                node = ClusterNodeProcess(port, free_port(), data_dir)
                self._nodes.append(node)
                self._launch(node)
            for node in self._nodes:
                node.node_id = str(node.command("CLUSTER", "MYID"))
            subprocess.run(
                [
                    self.cli,
                    "--cluster",
                    "create",
                    *(node.name for node in self._nodes),
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=WAIT_SECONDS,
            )
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, node: ClusterNodeProcess) -> None:
        log = node.data_dir / "server.log"
        node.process = subprocess.Popen(
            [
                self.server,
                "--port",
                str(node.port),
                "--bind",
                HOST,
                "--dir",
                str(node.data_dir),
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(node.bus_port),
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                # A replica fails over however long it was cut off, and stays with its shard:
                # the tests decide the topology, not the cluster's replica migration.
                "--cluster-replica-validity-factor",
                "0",
                "--cluster-allow-replica-migration",
                "no",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(f"{node.name} answers PING", lambda: node.alive and node.command("PING"))

    def stop(self) -> None:
        """Stop every server (SIGTERM, then SIGKILL after a bound) and close the clients."""
        for node in self._nodes:
            node.close_client()
            if node.alive and node.process is not None:
                node.process.terminate()
        for node in self._nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(timeout=10)

    # -- topology -----------------------------------------------------------------------------

    def nodes(self) -> list[ClusterNodeProcess]:
        return list(self._nodes)

    def live_nodes(self) -> list[ClusterNodeProcess]:
        return [node for node in self._nodes if node.alive]

    @property
    def seed_url(self) -> str:
        """A URL of one live primary (what STOCKSYNC_REDIS_URL names)."""
        return self.primary_nodes()[0].url

    def node(self, port: int) -> ClusterNodeProcess:
        return next(node for node in self._nodes if node.port == port)

    def slot_map(self, via: ClusterNodeProcess | None = None) -> dict[int, list[int]]:
        """slot -> ports [primary, replicas...] as ``via`` (default: a live node) sees it."""
        node = via or self.live_nodes()[0]
        owners: dict[int, list[int]] = {}
        for start, end, *servers in node.command("CLUSTER", "SLOTS"):
            ports = [int(server[1]) for server in servers]
            for slot in range(int(start), int(end) + 1):
                owners[slot] = ports
        return owners

    def primary_for_slot(self, slot: int) -> ClusterNodeProcess:
        return self.node(self.slot_map()[slot][0])

    def primary_nodes(self) -> list[ClusterNodeProcess]:
        """Live nodes that own slots, by port."""
        ports = {ports[0] for ports in self.slot_map().values()}
        return [node for node in self.live_nodes() if node.port in ports]

    def replicas_of(self, primary: ClusterNodeProcess) -> list[ClusterNodeProcess]:
        """Live nodes that replicate ``primary`` (per CLUSTER NODES)."""
        replicas = []
        for line in str(primary.command("CLUSTER", "NODES")).splitlines():
            parts = line.split()
            if parts[3] == primary.node_id and "fail" not in parts[2]:
                port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
                replica = self.node(port)
                if replica.alive:
                    replicas.append(replica)
        return replicas

    def healthy(self) -> bool:
        """Every live node: cluster_state ok, every slot served, and one slot map for all."""
        maps = []
        for node in self.live_nodes():
            info = str(node.command("CLUSTER", "INFO"))
            fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
            if fields.get("cluster_state") != "ok" or int(fields["cluster_slots_ok"]) != SLOTS:
                return False
            maps.append(self.slot_map(node))
        if any(owners != maps[0] for owners in maps) or len(maps[0]) != SLOTS:
            return False
        return all(self._replicated(self.node(port)) for port in {p[0] for p in maps[0].values()})

    def _replicated(self, primary: ClusterNodeProcess) -> bool:
        """The primary's replicas (as many as it has alive, up to ``replicas``) are attached
        and done with their initial sync (a WAIT before that blocks to its timeout)."""
        expected = min(self.replicas, len(self.replicas_of(primary)))
        info = primary.info("replication")
        online = [
            value
            for name, value in info.items()
            if name.startswith("slave") and isinstance(value, dict) and value["state"] == "online"
        ]
        return len(online) >= expected and (expected > 0 or self.replicas == 0)

    def wait_healthy(self, seconds: float = WAIT_SECONDS) -> None:
        wait_until("the cluster is healthy", self.healthy, seconds)

    def flush(self) -> None:
        """Delete every key on every primary (the function libraries stay)."""
        for node in self.primary_nodes():
            node.command("FLUSHALL")

    # -- failures -------------------------------------------------------------------------------

    def kill(self, node: ClusterNodeProcess) -> None:
        """SIGKILL: no shutdown, no final fsync."""
        assert node.process is not None
        self._map_before_kill = self.slot_map()
        node.close_client()
        node.process.kill()
        node.process.wait(timeout=10)

    @contextlib.contextmanager
    def paused(self, node: ClusterNodeProcess) -> Iterator[None]:
        """SIGSTOP the node for the block (it keeps its sockets but answers nothing)."""
        assert node.process is not None
        node.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            node.process.send_signal(signal.SIGCONT)

    def wait_for_failover(self, old_primary: ClusterNodeProcess) -> ClusterNodeProcess:
        """Wait until another node owns the slots ``old_primary`` owned and the cluster is
        ok again; returns the promoted node."""
        owned = self._map_before_kill.items()
        slots = [slot for slot, ports in owned if ports[0] == old_primary.port]
        assert slots, f"{old_primary.name} owned no slot"

        def promoted() -> ClusterNodeProcess | None:
            owners = self.slot_map()
            owner = owners[slots[0]][0]
            if owner == old_primary.port:
                return None
            for node in self.live_nodes():
                info = str(node.command("CLUSTER", "INFO"))
                if "cluster_state:ok" not in info:
                    return None
            return self.node(owner)

        return wait_until(f"a replica of {old_primary.name} is promoted", promoted)

    def restart(self, node: ClusterNodeProcess) -> None:
        """Start a stopped node again on its data dir; it rejoins (a replaced primary comes
        back as a replica of its successor). Returns once the cluster is healthy again."""
        assert not node.alive
        self._launch(node)
        self.wait_healthy()
        # Its first AOF after the resync: until written, the node refuses SIGTERM.
        wait_until(
            f"{node.name} wrote its AOF",
            lambda: (
                node.info("persistence")["aof_rewrite_in_progress"] == 0
                and node.info("persistence")["aof_rewrite_scheduled"] == 0
            ),
        )

    # -- slot migration -------------------------------------------------------------------------

    def begin_slot_migration(self, slot: int, target: ClusterNodeProcess) -> ClusterNodeProcess:
        """IMPORTING on the target, MIGRATING on the owner; returns the owner (source)."""
        source = self.primary_for_slot(slot)
        assert source.port != target.port, "the target already owns the slot"
        target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
        return source

    def move_slot_keys(
        self, slot: int, source: ClusterNodeProcess, target: ClusterNodeProcess, batch: int = 100
    ) -> int:
        """MIGRATE up to ``batch`` keys of the slot from source to target; returns how many
        moved (0: the slot is empty on the source)."""
        keys = source.command("CLUSTER", "GETKEYSINSLOT", slot, batch)
        if keys:
            source.command("MIGRATE", HOST, target.port, "", 0, 10_000, "KEYS", *keys)
        return len(keys)

    def finish_slot_migration(self, slot: int, target: ClusterNodeProcess) -> None:
        """SETSLOT NODE on the target, the source, then every other primary; wait until every
        live node's slot map names the target."""
        source = self.primary_for_slot(slot)
        target.command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        source.command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        for node in self.primary_nodes():
            if node.port not in (source.port, target.port):
                node.command("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
        wait_until(
            f"every node sees slot {slot} on {target.name}",
            lambda: all(self.slot_map(n)[slot][0] == target.port for n in self.live_nodes()),
        )

    def migrate_slot(
        self,
        slot: int,
        target: ClusterNodeProcess,
        batch: int = 100,
        between_batches: Callable[[], None] | None = None,
    ) -> int:
        """Move ``slot`` with its keys to ``target`` (a primary); returns the keys moved.
        ``between_batches`` runs after each MIGRATE (a test's hook into the half-moved state)."""
        source = self.begin_slot_migration(slot, target)
        moved = 0
        while count := self.move_slot_keys(slot, source, target, batch):
            moved += count
            if between_batches is not None:
                between_batches()
        self.finish_slot_migration(slot, target)
        return moved
