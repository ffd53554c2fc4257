"""Drives the open-loop generator processes (:mod:`bench.load.loadgen`): starts them, releases
them at one start time, measures the CPU of the measurement window, gathers their results."""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue

from bench.harness.cpu import CpuSample, CpuWindow, PidSource
from bench.load.loadgen import GenResult, GenSpec, child_main

READY_TIMEOUT_S = 60.0


def drive(
    specs: Sequence[GenSpec], groups: dict[str, PidSource], warmup_s: float, timeout_s: float
) -> tuple[list[GenResult], CpuSample]:
    """One process per spec; their results once every one has reported (within ``timeout_s``
    of the window's start), and the CPU of ``groups`` over the window (after ``warmup_s``)."""
    ctx = multiprocessing.get_context("spawn")
    ready: Queue[int] = ctx.Queue()
    results: Queue[GenResult] = ctx.Queue()
    go = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    children = [
        ctx.Process(target=child_main, args=(s, ready, go, start_at, results), daemon=True)
        for s in specs
    ]
    try:
        for child in children:
            child.start()
        _await_ready(children, ready)
        start_at.value = time.monotonic() + 0.2
        go.set()
        time.sleep(max(0.0, start_at.value + warmup_s - time.monotonic()))
        window = CpuWindow(groups).start()
        deadline = time.monotonic() + timeout_s
        gathered = [_next_result(children, results, deadline) for _ in children]
        cpu = window.stop(sum(g.cpu_seconds for g in gathered))
    finally:
        started = [child for child in children if child.pid is not None]
        for child in started:  # normally all have exited; after an interrupt, stop them now
            if child.is_alive():
                child.terminate()
        for child in started:
            child.join(timeout=5)
            if child.is_alive():
                child.kill()
                child.join()
    return gathered, cpu


def _await_ready(children: Sequence[BaseProcess], ready: Queue[int]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = len(children)
    while waiting:
        try:
            ready.get(timeout=0.2)
            waiting -= 1
        except queue.Empty:
            dead = [c for c in children if c.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError("an open-loop generator process did not start") from None


def _next_result(
    children: Sequence[BaseProcess],
    results: Queue[GenResult],
    deadline: float,
) -> GenResult:
    while time.monotonic() < deadline:
        try:
            return results.get(timeout=0.5)
        except queue.Empty:
            if all(c.exitcode is not None for c in children):
                break  # every child has exited and nothing more will arrive
    raise RuntimeError("an open-loop generator process returned no result")
