"""Where each stock domain lives and how far its outbox is behind: ``stocksync cluster status``
and ``stocksync domains list``.

A domain's keys share one hash slot (the slot of its anchor key); on a cluster the slot map of
the client names the primary serving it and its replicas. On a standalone server the node is
``standalone`` and the replicas are the ones it reports (``INFO replication``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio import RedisCluster

from stocksync.store.domain_moves import domain_slot, is_frozen

if TYPE_CHECKING:
    from stocksync.store.redis_store import RedisStockStore

STANDALONE = "standalone"


@dataclass(frozen=True)
class DomainStatus:
    domain: str
    locations: int
    slot: int
    node: str  # host:port of the primary serving the slot, or "standalone"
    replicas: tuple[str, ...]  # host:port of each replica of that node
    frozen: bool  # moving to another node: every call refused
    outbox_entries: int | None  # events the ledger copy has not acknowledged; None: no group
    outbox_seconds: float | None  # age of the oldest of them

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["replicas"] = list(self.replicas)
        return out


async def _standalone_replicas(store: RedisStockStore) -> tuple[str, ...]:
    info: dict[str, Any] = await store.client.info("replication")
    found = []
    for i in range(int(info.get("connected_slaves", 0))):
        replica = info.get(f"slave{i}")
        if isinstance(replica, dict):
            found.append(f"{replica.get('ip')}:{replica.get('port')}")
    return tuple(found)


def _placement(client: RedisCluster, slot: int) -> str:
    nodes = client.nodes_manager.slots_cache.get(slot) or []
    return nodes[0].name if nodes else "uncovered"


async def _cluster_replicas(client: RedisCluster) -> dict[str, tuple[str, ...]]:
    """Primary host:port -> its healthy replicas, from CLUSTER NODES (CLUSTER SLOTS leaves out
    replicas that are still syncing, and the client's slot map only has what it said)."""
    text = await client.execute_command("CLUSTER", "NODES", target_nodes=client.get_primaries())
    if isinstance(text, dict):  # one reply per node asked: any one will do
        text = next(iter(text.values()))
    addresses: dict[str, str] = {}
    replicas: dict[str, list[str]] = {}
    for line in str(text).splitlines():
        node_id, address, flags, master_id, *_ = line.split()
        host_port = address.split("@")[0]
        addresses[node_id] = host_port
        if "slave" in flags and "fail" not in flags:
            replicas.setdefault(master_id, []).append(host_port)
    return {addresses[m]: tuple(sorted(r)) for m, r in replicas.items() if m in addresses}


async def domain_statuses(
    store: RedisStockStore, *, group: str | None = None
) -> list[DomainStatus]:
    """Every domain of the namespace; with ``group`` (the ledger copy's consumer group), its
    outbox lag too."""
    client: Any = store.client
    on_cluster = isinstance(client, RedisCluster)
    if on_cluster:
        replicas_of = await _cluster_replicas(client)
    else:
        replicas_of = {STANDALONE: await _standalone_replicas(store)}
    out = []
    for domain in await store.domains(fresh=True):
        keys = store.keys_of(domain)
        slot = domain_slot(store, domain)
        node = _placement(client, slot) if on_cluster else STANDALONE
        replicas = replicas_of.get(node, ())
        entries: int | None = None
        seconds: float | None = None
        if group is not None:
            lag = await store.outbox_of(domain).group_lag(group)
            if lag is not None:
                entries, seconds = lag.events, lag.seconds
        out.append(
            DomainStatus(
                domain=domain,
                locations=int(await store.client.scard(keys.locations)),
                slot=slot,
                node=node,
                replicas=replicas,
                frozen=await is_frozen(store, domain),
                outbox_entries=entries,
                outbox_seconds=seconds,
            )
        )
    return out
