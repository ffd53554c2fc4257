"""The crash tests' stack on a Valkey Cluster: the Redis side of ``tests.support.processes``
when ``STOCKSYNC_REDIS_CLUSTER=true`` names a seed node of a real cluster.

Killing "redis" here means SIGKILL of the primary that serves the stack's stock domain: the
cluster promotes that shard's replica (the API's calls fail meanwhile, after the transport's
short retry window, and the driver retries them with the same ids). The killed node is started
again once the load is over, so the cluster ends healthy for the next test; it rejoins as a
replica of the node that replaced it.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import RedisCluster

from tests.support.cluster import ClusterNodeProcess, ValkeyCluster
from tests.support.cluster_domains import directory_slot, domain_off_directory, domain_slot

# How long one script call rides out a failover inside the API before it answers 503: short,
# so a failover shows as failed calls that the driver retries (the same ids), not only as slow
# ones.
CALL_RETRY_SECONDS = 1.0


def crash_domain(cluster: ValkeyCluster, namespace: str) -> str:
    """A domain whose primary is not the directory's: killing it leaves routing up, and the
    flows' script calls go to another node than the directory's."""
    owners = cluster.slot_map()
    domain = domain_off_directory(owners, namespace, prefix="crash")
    assert owners[domain_slot(namespace, domain)][0] != owners[directory_slot(namespace)][0]
    return domain


class ClusterRedis:
    """The stack's domain on ``cluster`` (a :class:`tests.support.processes.RedisBackend`)."""

    def __init__(self, cluster: ValkeyCluster, namespace: str, domain: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.domain = domain
        # A seed node other than the domain's primary, so that processes (re)started while
        # that primary is down still reach the cluster.
        serving = self.primary().port
        self._url = next(n for n in cluster.primary_nodes() if n.port != serving).url
        self.killed: ClusterNodeProcess | None = None
        self.promoted: ClusterNodeProcess | None = None

    @property
    def url(self) -> str:
        return self._url

    def env(self) -> dict[str, str]:
        return {
            "STOCKSYNC_REDIS_CLUSTER": "true",
            "STOCKSYNC_REDIS_CLUSTER_RETRY_SECONDS": str(CALL_RETRY_SECONDS),
        }

    def client(self) -> RedisCluster:
        return RedisCluster.from_url(self.url, decode_responses=True)

    def primary(self) -> ClusterNodeProcess:
        """The node serving the domain now."""
        return self.cluster.primary_for_slot(domain_slot(self.namespace, self.domain))

    async def kill_and_recover(self) -> None:
        victim = self.primary()
        assert self.cluster.replicas_of(victim), "the domain's shard has no replica to promote"
        await asyncio.to_thread(self.cluster.kill, victim)
        self.killed = victim
        self.promoted = await asyncio.to_thread(self.cluster.wait_for_failover, victim)

    async def restore(self) -> None:
        """Start the killed node again (it rejoins as a replica); wait for a healthy cluster."""
        if self.killed is not None and not self.killed.alive:
            await asyncio.to_thread(self.cluster.restart, self.killed)
