"""The ``cluster`` section: reservations/s and Redis CPU per reservation on one standalone server
and on Valkey Clusters of 1, 2 and 3 primaries, in the same run, with the same load.

The load comes from this one process through the store API (``RedisStockStore.reserve``,
``concurrency`` asyncio callers, a fixed number of reservations after a warm-up), spread evenly
over ``DOMAINS`` stock domains, each with one location of ``SKUS`` positions. The domain names
are chosen per topology so that every primary serves the same number of domains (by the CRC16
slot of ``{<namespace>:<domain>}``). The standalone server and every cluster node run with the
AOF on and the same ``appendfsync``.

The cluster rows without replicas need no replica wait (``auto`` = off there); the 3-primary
cluster is then run again with one replica per primary, once with ``replica_wait=off`` and once
with ``auto`` (= ``WAIT 1`` on a shard with a replica), to show what the wait costs.

Per node: its CPU (``/proc``, user + system) over the measured window, divided by the
reservations whose domain it serves; the node holding the namespace's directory also claims
every reservation id (one more batched script call per batch of reserves), which shows as its
extra CPU. On a 2-core host with the load generator in the same box, reservations/s cannot grow
with primaries: the per-node CPU per reservation is the figure that scales.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Literal

import redis
from redis.crc import key_slot

from bench.harness.aio import run_async
from bench.harness.config import CHANNEL, TTL_SECONDS, Profile
from bench.harness.cpu import CpuWindow, process_cpu_seconds, self_cpu_seconds
from bench.harness.report import Row
from bench.harness.servers import BenchRedis
from bench.harness.stats import Latency
from bench.harness.valkey_cluster import BenchCluster
from stocksync.config import Settings
from stocksync.domain.model import Line, Location
from stocksync.store.connection import open_store
from stocksync.store.embedded import bundled_server_binary
from stocksync.store.keys import Directory, Keys

ReplicaWaitMode = Literal["auto", "off", "wait", "waitaof"]
NAMESPACE = "benchcl"
DOMAINS = 6  # divisible by 1, 2 and 3 primaries: every primary serves as many domains
SKUS = 200  # positions per domain (one location each)
ON_HAND = 1_000_000_000
WARMUP_SHARE = 0.1  # of the fixed op count, before the stats reset
FSYNC = "always"
SCRIPT_COMMANDS = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})


@dataclass(frozen=True)
class Topology:
    label: str
    primaries: int  # 0 = the standalone server
    replicas: int = 0
    replica_wait: ReplicaWaitMode = "auto"

    @property
    def cluster(self) -> bool:
        return self.primaries > 0


TOPOLOGIES = (
    Topology("standalone", 0),
    Topology("cluster 1 primary", 1),
    Topology("cluster 2 primaries", 2),
    Topology("cluster 3 primaries", 3),
    Topology("cluster 3 primaries + 3 replicas, wait off", 3, 1, "off"),
    Topology("cluster 3 primaries + 3 replicas, WAIT 1", 3, 1, "auto"),
)


def domain_names(slot_owner: dict[int, int] | None, primaries: list[int]) -> dict[str, int]:
    """DOMAINS names, as many on each primary (name -> port; port 0 on a standalone server)."""
    if slot_owner is None:
        return {f"d{n}": 0 for n in range(DOMAINS)}
    per_primary = DOMAINS // len(primaries)
    found: dict[str, int] = {}
    counts = dict.fromkeys(primaries, 0)
    for n in itertools.count():
        name = f"d{n}"
        port = slot_owner[key_slot(Keys(NAMESPACE, name).anchor.encode())]
        if counts[port] < per_primary:
            counts[port] += 1
            found[name] = port
        if len(found) == DOMAINS:
            return found
    raise AssertionError("unreachable")


@dataclass
class Measured:
    seconds: float
    samples: list[float]
    reservations: int
    client_cpu_s: float
    node_cpu_s: dict[int, float]  # port (0: standalone) -> CPU seconds in the window
    cpu_shares: dict[str, float]
    node_scripts: dict[int, tuple[int, float]]  # port -> (script calls, their µs) in the window


def script_stats(urls: dict[int, str]) -> dict[int, tuple[int, float]]:
    """Per node: script calls (FCALL, EVALSHA, ...) and their total µs since the last reset."""
    found = {}
    for port, url in urls.items():
        with redis.Redis.from_url(url, decode_responses=True) as client:
            stats = client.info("commandstats")
        scripts = [
            value
            for name, value in stats.items()
            if name.removeprefix("cmdstat_") in SCRIPT_COMMANDS and isinstance(value, dict)
        ]
        found[port] = (
            sum(int(v.get("calls", 0)) for v in scripts),
            sum(float(v.get("usec", 0)) for v in scripts),
        )
    return found


def reset_stats(urls: dict[int, str]) -> None:
    for url in urls.values():
        with redis.Redis.from_url(url) as client:
            client.config_resetstat()


async def load(
    url: str,
    topology: Topology,
    domains: dict[str, int],
    pids: dict[int, int],
    urls: dict[int, str],
    reservations: int,
    concurrency: int,
) -> Measured:
    settings = Settings(
        redis_url=url,
        redis_cluster=topology.cluster,
        namespace=NAMESPACE,
        replica_wait=topology.replica_wait,
        redis_pool_size=concurrency,
    )
    async with open_store(settings, url) as store:
        names = list(domains)
        for domain in names:
            location = f"loc-{domain}"
            await store.upsert_location(Location(location, location, "store", domain=domain))
            await asyncio.gather(
                *(store.set_count(f"SKU-{k}", location, ON_HAND) for k in range(SKUS))
            )
        counter = itertools.count()
        samples: list[float] = []

        async def caller(total: int, measure: bool) -> None:
            while (i := next(counter)) < total:
                domain = names[i % DOMAINS]
                line = Line(f"SKU-{(i // DOMAINS) % SKUS}", f"loc-{domain}", 1)
                began = perf_counter()
                await store.reserve(f"r{i}", CHANNEL, [line], TTL_SECONDS)
                if measure:
                    samples.append(perf_counter() - began)

        warmup = int(reservations * WARMUP_SHARE)
        await asyncio.gather(*(caller(warmup, False) for _ in range(concurrency)))
        counter = itertools.count(warmup)
        reset_stats(urls)
        window = CpuWindow({"redis": lambda: list(pids.values())}).start()
        before = {port: process_cpu_seconds([pid]) for port, pid in pids.items()}
        client_before = self_cpu_seconds()
        started = perf_counter()
        await asyncio.gather(*(caller(warmup + reservations, True) for _ in range(concurrency)))
        seconds = perf_counter() - started
        client_cpu = self_cpu_seconds() - client_before
        node_cpu = {port: process_cpu_seconds([pid]) - before[port] for port, pid in pids.items()}
        shares = window.stop(client_cpu).shares()
        scripts = script_stats(urls)
    return Measured(seconds, samples, reservations, client_cpu, node_cpu, shares, scripts)


def measure(
    stack: ExitStack, topology: Topology, profile: Profile, tmp_dir: Path | None
) -> tuple[Measured, dict[str, int], int, dict[int, str]]:
    """Run the load on a fresh server or cluster; also returns the domains' ports, the
    directory's port, and each node's role ("primary", "replica", "standalone")."""
    if not topology.cluster:
        server = stack.enter_context(BenchRedis(FSYNC, tmp_dir))
        domains = domain_names(None, [])
        pids = {0: server.pid}
        urls = {0: server.url}
        roles = {0: "standalone"}
        url, directory_port = server.url, 0
    else:
        cluster = stack.enter_context(
            BenchCluster(topology.primaries, topology.replicas, FSYNC, tmp_dir)
        )
        owners = cluster.slot_owner()
        domains = domain_names(owners, [node.port for node in cluster.primary_nodes()])
        pids = {node.port: node.pid for node in cluster.nodes}
        urls = {node.port: node.url for node in cluster.nodes}
        roles = {
            n.port: "primary" if n.primary else f"replica of {n.follows}" for n in cluster.nodes
        }
        url = cluster.seed_url
        directory_port = owners[key_slot(Directory(NAMESPACE).anchor.encode())]
    measured = run_async(
        load(
            url,
            topology,
            domains,
            pids,
            urls,
            profile.cluster_reservations,
            profile.cluster_concurrency,
        )
    )
    return measured, domains, directory_port, roles


def row_of(
    topology: Topology,
    measured: Measured,
    domains: dict[str, int],
    directory_port: int,
    roles: dict[int, str],
    concurrency: int,
    baseline: float | None,
) -> Row:
    made = measured.reservations
    latency = Latency.of_seconds(measured.samples)
    per_node = []
    for port, cpu in sorted(measured.node_cpu_s.items()):
        role = roles[port]
        shard = int(role.rsplit(" ", 1)[1]) if role.startswith("replica") else port
        owned = sum(1 for p in domains.values() if p == shard)
        served = owned * made // DOMAINS
        per_node.append(
            {
                "node": "standalone" if port == 0 else str(port),
                "role": role,
                "domains": owned,
                "directory": port == directory_port,
                "cpu_s": round(cpu, 3),
                "script_calls": measured.node_scripts[port][0],
                "script_us_per_reservation_served": (
                    round(measured.node_scripts[port][1] / served, 1) if served else None
                ),
                "cpu_us_per_reservation_served": round(1e6 * cpu / served, 1) if served else None,
            }
        )
    redis_cpu = sum(measured.node_cpu_s.values())
    return Row(
        section="cluster",
        scenario=f"store.reserve, {topology.label}",
        fsync=FSYNC,
        workers=None,
        concurrency=str(concurrency),
        ops_s=made / measured.seconds,
        p50_ms=latency.p50,
        p99_ms=latency.p99,
        baseline="" if baseline is None else "standalone",
        baseline_ops_s=baseline,
        cpu=measured.cpu_shares,
        extra={
            "reservations": made,
            "primaries": topology.primaries,
            "replicas_per_primary": topology.replicas,
            "replica_wait": topology.replica_wait if topology.cluster else "off (standalone)",
            "redis_cpu_us_per_reservation": round(1e6 * redis_cpu / made, 1),
            "client_cpu_us_per_reservation": round(1e6 * measured.client_cpu_s / made, 1),
            "per_node": per_node,
        },
    )


def run(
    profile: Profile,
    tmp_dir: Path | None,
    log: Callable[[str], None],
    topologies: tuple[Topology, ...] = TOPOLOGIES,
) -> list[Row]:
    rows: list[Row] = []
    baseline: float | None = None
    for topology in topologies:
        log(f"cluster: {topology.label}, {profile.cluster_reservations:,} reservations")
        with ExitStack() as stack:
            measured, domains, directory_port, roles = measure(stack, topology, profile, tmp_dir)
        row = row_of(
            topology,
            measured,
            domains,
            directory_port,
            roles,
            profile.cluster_concurrency,
            baseline,
        )
        if baseline is None:
            baseline = row.ops_s
        rows.append(row)
    return rows


def server_version() -> str:
    """The bundled server's version (what every node of this section runs)."""
    done = subprocess.run(
        [str(bundled_server_binary()), "--version"], capture_output=True, text=True, check=True
    )
    name, _, version = done.stdout.split()[:3]  # "Valkey server v=8.1.8 ..."
    return f"{name.lower()} {version.removeprefix('v=')}"


def notes(rows: list[Row]) -> list[str]:
    """Per row: Redis CPU per reservation in total and per node."""
    lines = []
    for row in rows:
        if row.section != "cluster":
            continue
        x = row.extra
        nodes = "; ".join(
            f"{n['node']} ({n['role']}, {n['domains']} domains"
            + (", directory" if n["directory"] else "")
            + f"): CPU {n['cpu_us_per_reservation_served'] or '-'} µs per reservation served,"
            + f" scripts {n['script_us_per_reservation_served'] or '-'} µs in"
            + f" {n['script_calls']:,} calls"
            for n in x["per_node"]  # type: ignore[attr-defined]
        )
        lines.append(
            f"{row.scenario}: {x['reservations']:,} reservations, replica wait"
            f" {x['replica_wait']}; Redis CPU {x['redis_cpu_us_per_reservation']} µs per"
            f" reservation (all nodes), client {x['client_cpu_us_per_reservation']} µs; per"
            f" node: {nodes}"
        )
    if lines:
        lines.append(
            f"cluster rows: load from one process through store.reserve ({DOMAINS} domains x"
            f" {SKUS} positions, one line per reservation), every node with AOF appendfsync"
            f" {FSYNC}; per-node µs per reservation served = the node's CPU over the reservations"
            " in the domains its shard owns (a replica: its primary's);"
            " on 2 cores the client and every node share the same CPUs, so reservations/s cannot"
            " grow with primaries: per-node CPU per reservation is the figure that scales."
        )
    return lines
