"""Supervision with real parts: a crashing worker leaves the API answering; the bundled
redis-server comes back after a kill -9 with what it had acknowledged."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import anyio
import httpx
import pytest
import redis

from stocksync.api.app import create_app
from stocksync.config import Settings
from stocksync.store.embedded import EmbeddedRedis
from stocksync.workers import supervisor
from tests.support.ports import free_port

WAIT_LIMIT_SECONDS = 30.0


async def test_a_crashing_worker_is_restarted_and_the_api_keeps_answering(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashes = 0
    third_crash = anyio.Event()

    async def broken_reaper(*args: object, **kwargs: object) -> None:
        nonlocal crashes
        crashes += 1
        if crashes == 3:
            third_crash.set()
        raise RuntimeError("unexpected bug in the reaper")

    monkeypatch.setattr(supervisor, "run_reaper", broken_reaper)
    app = create_app(
        settings.model_copy(update={"run_workers": True, "worker_restart_backoff_seconds": 0.01})
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        with anyio.fail_after(WAIT_LIMIT_SECONDS):
            await third_crash.wait()
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        restarts = app.state.metrics.registry.get_sample_value(
            "stocksync_worker_restarts_total", {"worker": "reaper"}
        )
        assert restarts is not None
        assert restarts >= 2
        # The others are exported at 0 from the start (so alerts see a first restart).
        for healthy in ("ledger_copy", "regression_check", "audit"):
            assert (
                app.state.metrics.registry.get_sample_value(
                    "stocksync_worker_restarts_total", {"worker": healthy}
                )
                == 0
            )


def test_the_bundled_redis_restarts_after_a_kill_and_keeps_acknowledged_writes(
    tmp_path: Path,
) -> None:
    restarts: list[float] = []
    server = EmbeddedRedis(tmp_path, port=free_port(), appendonly=True, appendfsync="always")
    server.start()
    server.supervise(on_restart=lambda: restarts.append(time.monotonic()))
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        client.set("acknowledged", "1")
        client.close()
        assert server.process is not None
        first_pid = server.process.pid
        os.kill(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        while True:  # bounded poll for the watchdog's restart
            process = server.process
            if process is not None and process.pid != first_pid:
                try:
                    with redis.Redis.from_url(server.url, decode_responses=True) as again:
                        if again.get("acknowledged") == "1":
                            break
                except redis.RedisError:
                    pass
            assert time.monotonic() < deadline, "the bundled redis-server did not come back"
            time.sleep(0.05)
        assert len(restarts) == 1
    finally:
        server.stop()
    assert server.process is None
