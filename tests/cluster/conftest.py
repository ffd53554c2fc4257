"""One real Valkey Cluster (3 primaries, 1 replica each) for the whole cluster test package.

Starting it takes seconds, so it is started once per session; ``cluster`` empties it before each
test (FLUSHALL on the primaries). A test that kills or pauses a node leaves the cluster healthy
again (the killed node restarted, it rejoins as a replica) before it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from stocksync.config import Settings
from stocksync.store.cluster_transport import ClusterTransport
from stocksync.store.connection import open_client
from stocksync.store.embedded import bundled_server_binary
from tests.support.cluster import ValkeyCluster

OpenTransport = Callable[..., AbstractAsyncContextManager[ClusterTransport]]


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    try:
        bundled_server_binary()
    except RuntimeError as exc:
        pytest.skip(f"cluster tests need the valkey-server binary: {exc}")
    cluster = ValkeyCluster(tmp_path_factory.mktemp("cluster"), primaries=3, replicas=1)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster(valkey_cluster: ValkeyCluster) -> ValkeyCluster:
    valkey_cluster.wait_healthy()
    valkey_cluster.flush()
    return valkey_cluster


@pytest.fixture
def open_transport(cluster: ValkeyCluster) -> OpenTransport:
    """``async with open_transport(replica_wait="wait", ...) as transport``: the cluster
    transport ``open_store`` builds, from settings naming the cluster's seed node."""

    @asynccontextmanager
    async def opened(**settings: Any) -> AsyncIterator[ClusterTransport]:
        configured = Settings(redis_url=cluster.seed_url, redis_cluster=True, **settings)
        assert configured.redis_url is not None
        async with open_client(configured, configured.redis_url, 8) as (_, transport):
            assert isinstance(transport, ClusterTransport)
            yield transport

    return opened
