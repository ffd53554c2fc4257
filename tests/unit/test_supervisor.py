"""A supervised worker restarts after a failure, is counted, and never ends its task group."""

from __future__ import annotations

import anyio

from stocksync.metrics import Metrics
from stocksync.workers.supervisor import supervised


async def test_supervised_restarts_a_failing_worker_and_counts_each_restart() -> None:
    metrics = Metrics()
    runs = 0
    third_run = anyio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("a bug in a worker")
        third_run.set()
        await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: supervised("flaky", flaky, metrics, initial_backoff=0.001))
            await third_run.wait()
            tg.cancel_scope.cancel()
    assert runs == 3
    restarts = metrics.registry.get_sample_value(
        "stocksync_worker_restarts_total", {"worker": "flaky"}
    )
    assert restarts == 2


async def test_supervised_restarts_a_worker_that_returned() -> None:
    metrics = Metrics()
    second_run = anyio.Event()
    runs = 0

    async def returns_once() -> None:
        nonlocal runs
        runs += 1
        if runs == 2:
            second_run.set()
            await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: supervised("once", returns_once, metrics, initial_backoff=0.001))
            await second_run.wait()
            tg.cancel_scope.cancel()
    assert (
        metrics.registry.get_sample_value("stocksync_worker_restarts_total", {"worker": "once"})
        == 1
    )
