"""`stocksync serve` runs the workers in one process of its own, whatever the API's process
count: the ledger copy still happens, a killed workers process comes back, and SIGTERM on serve
stops every process it started. Real processes, real Redis, SQLite."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from stocksync.ledger.db import make_engine
from stocksync.ledger.tables import LedgerReservation
from tests.support.ports import free_port
from tests.support.serve import (
    ServeEnv,
    child_processes,
    is_running,
    serve_env,
    serve_process,
    stocksync_cli,
)

pytestmark = pytest.mark.slow

WAIT_LIMIT_SECONDS = 45.0  # python start-up of a restarted process is seconds on 2 shared cores


def workers_processes(serve_pid: int) -> list[int]:
    """serve's children running `stocksync worker` (the API processes are uvicorn's spawns)."""
    return [
        pid
        for pid, argv in child_processes(serve_pid).items()
        if argv[1:4] == stocksync_cli("worker")[1:4]
    ]


def api_processes(serve_pid: int) -> list[int]:
    return [
        pid
        for pid, argv in child_processes(serve_pid).items()
        if any("multiprocessing.spawn" in arg for arg in argv)
    ]


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while not check():  # bounded poll of other processes' progress
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def reserve(url: str, key: str, reservation_id: str, sku: str) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        client.put("/v1/locations/store-a", json={"name": "A", "kind": "store"}).raise_for_status()
        client.put(f"/v1/stock/store-a/{sku}", json={"on_hand": 5}).raise_for_status()
        hold = {
            "reservation_id": reservation_id,
            "channel": "web",
            "ttl_seconds": 600,
            "lines": [{"sku": sku, "location_id": "store-a", "qty": 1}],
        }
        assert client.post("/v1/reservations", json=hold).status_code == 201


def in_ledger(deployment: ServeEnv, reservation_id: str) -> bool:
    engine = make_engine(f"sqlite:///{deployment.data_dir / 'stocksync.db'}")
    try:
        with engine.connect() as connection:
            found = connection.execute(
                select(LedgerReservation.state).where(  # type: ignore[call-overload]
                    LedgerReservation.reservation_id == reservation_id
                )
            ).first()
    finally:
        engine.dispose()
    return found is not None and found[0] == "held"


def test_serve_with_two_api_processes_runs_one_workers_process_and_restarts_it(
    redis_url: str, sku: str, tmp_path: Path
) -> None:
    deployment = serve_env(redis_url, tmp_path, "wp")
    key = deployment.create_key("ops", "read,reserve,stock:write,admin")
    metrics_port = free_port()
    with serve_process(deployment, "--workers", "2", worker_metrics_port=metrics_port) as (
        url,
        serve,
    ):
        wait_until(lambda: len(api_processes(serve.pid)) == 2, "two API processes")
        workers = workers_processes(serve.pid)
        assert len(workers) == 1, child_processes(serve.pid)
        wait_until(lambda: _metrics_answer(metrics_port), "the workers process serves its /metrics")

        reserve(url, key, "before-kill", sku)
        wait_until(lambda: in_ledger(deployment, "before-kill"), "the ledger copy ran")

        os.kill(workers[0], signal.SIGKILL)
        wait_until(
            lambda: workers_processes(serve.pid) not in ([], workers),
            "the killed workers process was restarted",
        )
        assert len(workers_processes(serve.pid)) == 1
        reserve(url, key, "after-kill", sku)
        wait_until(
            lambda: in_ledger(deployment, "after-kill"), "the restarted workers copy the ledger"
        )
    assert "restarting it" in (tmp_path / "serve.log").read_text()


def _metrics_answer(port: int) -> bool:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except httpx.TransportError:
        return False
    return answer.status_code == 200 and "stocksync_worker_restarts_total" in answer.text


def test_serve_on_the_embedded_default_copies_the_ledger_and_stops_every_child_on_sigterm(
    sku: str, tmp_path: Path
) -> None:
    deployment = serve_env("", tmp_path, "emb")
    del deployment.env["STOCKSYNC_REDIS_URL"]  # the bundled redis-server, as `make run`
    key = deployment.create_key("ops", "read,reserve,stock:write,admin")
    with serve_process(deployment) as (url, serve):
        children = child_processes(serve.pid)
        assert len(workers_processes(serve.pid)) == 1, children
        assert any("valkey-server" in argv[0] for argv in children.values()), children
        reserve(url, key, "embedded-hold", sku)
        wait_until(lambda: in_ledger(deployment, "embedded-hold"), "the ledger copy ran")

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=WAIT_LIMIT_SECONDS) == 0
        for pid in children:
            assert not is_running(pid), f"{children[pid]} outlived serve"
