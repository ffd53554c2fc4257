"""The store's state-machine model (tests/store/test_state_machine.py) on the real cluster.

The same rules and invariants, with the store opened in cluster mode from the seed node (script
calls routed by slot, every change waiting for its shard's replica: ``replica_wait=auto``) and
the locations in a stock domain whose primary is not the one holding the namespace's directory,
so each reserve's directory claim and its domain's script run on different nodes.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import ClassVar

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from stocksync.config import Settings
from stocksync.store.connection import open_store
from stocksync.store.redis_store import RedisStockStore
from tests.store.test_state_machine import StoreMachine
from tests.support.cluster import ValkeyCluster
from tests.support.cluster_domains import SlotMap, directory_slot, domain_off_directory, domain_slot

POOL_SIZE = 4  # per primary; the machine makes a handful of concurrent calls at most


class ClusterStoreMachine(StoreMachine):
    """:class:`StoreMachine` on a store opened in cluster mode, in a domain off the
    directory's primary (chosen per example: the namespace, hence the slots, is new each time)."""

    owners: ClassVar[SlotMap] = {}
    directory_and_domain_ports: ClassVar[list[tuple[int, int]]] = []

    async def open_store(self, namespace: str) -> RedisStockStore:
        self.domain = domain_off_directory(self.owners, namespace)
        directory_port = self.owners[directory_slot(namespace)][0]
        domain_port = self.owners[domain_slot(namespace, self.domain)][0]
        self.directory_and_domain_ports.append((directory_port, domain_port))
        configured = Settings(redis_url=self.url, redis_cluster=True, namespace=namespace)
        self.exit_stack = AsyncExitStack()
        return await self.exit_stack.enter_async_context(
            open_store(
                configured,
                self.url,
                pool_size=POOL_SIZE,
                observe_batch=self.batch_sizes.append,
            )
        )

    async def close_store(self) -> None:
        await self.exit_stack.aclose()


def test_store_state_machine_matches_model_on_a_cluster(cluster: ValkeyCluster) -> None:
    ClusterStoreMachine.url = cluster.seed_url
    ClusterStoreMachine.owners = cluster.slot_map()
    ClusterStoreMachine.directory_and_domain_ports = []
    run_state_machine_as_test(
        ClusterStoreMachine,
        settings=settings(max_examples=80, stateful_step_count=30, deadline=None),
    )
    ran = ClusterStoreMachine.directory_and_domain_ports
    assert ran, "no example ran"
    assert all(directory != domain for directory, domain in ran)
