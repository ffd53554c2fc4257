"""The crash suite on a real cluster: kill -9 the API, the ledger worker or the primary that
serves the flows' stock domain, under load, and prove that nothing acknowledged was lost or
applied twice (DESIGN promise 2, rules 5 and 6).

The same stack, driver and checks as the standalone suite (tests/integration/test_crash.py):
``stocksync serve`` and ``stocksync worker`` as subprocesses in cluster mode (a seed node of
the session's cluster, the default ``replica_wait=auto``: each acknowledgement waits for the
shard's replica), a ledger on SQLite (and on PostgreSQL for the primary's kill), the flows'
locations in a domain on a primary other than the directory's. Killing "redis" kills that
primary: its replica is promoted while the driver retries its failed calls with the same ids,
and the killed node is restarted once the load is over (it rejoins as a replica). Then every
acknowledged operation must be in Redis and in the ledger exactly once, and ``stocksync
audit`` must find no drift.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.cluster import ValkeyCluster
from tests.support.cluster_domains import domain_slot
from tests.support.cluster_stack import ClusterRedis, crash_domain
from tests.support.crash_checks import check_invariants
from tests.support.crash_load import load_with_crash
from tests.support.postgres import fresh_postgres_database
from tests.support.processes import Processes, Stack, running_stack


@pytest.fixture
def ledger_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite, unless a test asks for PostgreSQL (``indirect`` parametrisation): one scenario
    runs on both, which costs seconds, not all three."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    with fresh_postgres_database("stocksync_ccrash_") as url:
        yield url


@pytest.fixture
def backend(cluster: ValkeyCluster) -> ClusterRedis:
    namespace = "ccrash" + uuid.uuid4().hex[:8]
    return ClusterRedis(cluster, namespace, crash_domain(cluster, namespace))


@pytest.fixture
async def stack(
    tmp_path: Path, processes: Processes, backend: ClusterRedis, ledger_database_url: str
) -> AsyncIterator[Stack]:
    try:
        async with running_stack(
            tmp_path,
            processes,
            ledger_database_url,
            redis=backend,
            namespace=backend.namespace,
            domain=backend.domain,
        ) as running:
            yield running
    finally:
        await backend.restore()  # a failed test must still leave the cluster whole


async def test_kill_api_mid_load_on_a_cluster(stack: Stack) -> None:
    crash = await load_with_crash(stack, "api")
    assert crash.driver.failed_attempts > 0, "no call failed: the kill missed the load"
    await check_invariants(stack, crash)


async def test_kill_ledger_worker_mid_load_on_a_cluster(stack: Stack) -> None:
    crash = await load_with_crash(stack, "worker")
    assert crash.worker_held > 0, "the worker was not killed while holding outbox entries"
    await check_invariants(stack, crash)


@pytest.mark.parametrize(
    "ledger_database_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
async def test_kill_the_domains_primary_mid_load(
    stack: Stack, backend: ClusterRedis, cluster: ValkeyCluster
) -> None:
    crash = await load_with_crash(stack, "redis")
    assert crash.driver.failed_attempts > 0, "no call failed: the kill missed the load"
    assert backend.killed is not None
    assert backend.promoted is not None
    slot = domain_slot(backend.namespace, backend.domain)
    assert cluster.primary_for_slot(slot).port == backend.promoted.port
    assert backend.killed.alive  # restarted after the load, as a replica of its successor
    assert backend.killed in cluster.replicas_of(backend.promoted)
    await check_invariants(stack, crash)
