"""``stocksync serve`` in cluster mode, for tests that go through HTTP to a real cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.serve import ServeEnv, running_serve, serve_env


@dataclass(frozen=True)
class ClusterServer:
    """A running API on the cluster: its URL, an admin key and its namespace."""

    url: str
    key: str
    namespace: str

    def client(self, connections: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=60,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )


def cluster_serve_env(seed_url: str, data_dir: Path, label: str, **more: str) -> ServeEnv:
    """A deployment on the cluster (``seed_url`` names one node), a fresh namespace, no
    workers process (these tests are about the API's script calls; ``more`` adds settings)."""
    deployment = serve_env(seed_url, data_dir, label)
    deployment.env.update(STOCKSYNC_REDIS_CLUSTER="true", STOCKSYNC_RUN_WORKERS="false", **more)
    return deployment


@contextmanager
def cluster_server(
    seed_url: str, data_dir: Path, label: str, **more: str
) -> Iterator[ClusterServer]:
    deployment = cluster_serve_env(seed_url, data_dir, label, **more)
    key = deployment.create_key(label, "admin")
    with running_serve(deployment) as url:
        yield ClusterServer(url, key, deployment.env["STOCKSYNC_NAMESPACE"])
