"""The workers in a process of their own, started and supervised by ``stocksync serve``.

The API processes answer requests; the reaper, ledger copy, regression checks and audits run in
one child process (``stocksync worker``), so under load they never take an API process's CPU
(or its event loop), and ``--workers N`` runs them once, not N times. The child is restarted
whenever it dies (with a bounded back-off) and stopped with ``serve``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

RESTART_BACKOFF_FIRST_SECONDS = 0.5
RESTART_BACKOFF_MAX_SECONDS = 30.0
HEALTHY_RUN_SECONDS = 60.0  # a child that ran this long before dying is restarted at once
STOP_TIMEOUT_SECONDS = 15.0  # SIGTERM, then SIGKILL: a stuck child cannot hold serve open


def worker_command(metrics_host: str, metrics_port: int | None) -> list[str]:
    """``stocksync worker`` under this interpreter (what an operator would run by hand)."""
    command = [sys.executable, "-m", "stocksync.cli", "worker"]
    if metrics_port is not None:
        command += ["--metrics-port", str(metrics_port), "--metrics-host", metrics_host]
    return command


class WorkersProcess:
    """One ``stocksync worker`` child: started, restarted when it dies, stopped on exit.

    The child gets its own process group, so a Ctrl-C on the terminal reaches ``serve`` alone
    and ``serve`` stops the child in order (after the API has drained).
    """

    def __init__(
        self,
        command: list[str],
        env: Mapping[str, str],
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        self.command = command
        self.env = dict(env)
        self.on_restart = on_restart
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        process = self.process
        return None if process is None else process.pid

    def start(self) -> None:
        """Start the child and the thread that restarts it."""
        self._stopping.clear()
        self._spawn()
        self._watchdog = threading.Thread(target=self._watch, name="workers-watchdog", daemon=True)
        self._watchdog.start()

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            # stdout/stderr are serve's: the child's log lines go where serve's go.
            self.process = subprocess.Popen(self.command, env=self.env, process_group=0)
            log.info("workers process started (pid %s)", self.process.pid)

    def _watch(self) -> None:
        backoff = RESTART_BACKOFF_FIRST_SECONDS
        while not self._stopping.is_set():
            process = self.process
            if process is None:
                return
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= HEALTHY_RUN_SECONDS:
                backoff = RESTART_BACKOFF_FIRST_SECONDS
            log.error("the workers process exited with %s; restarting it in %.1fs", code, backoff)
            self.restarts += 1
            if self.on_restart is not None:
                self.on_restart()
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX_SECONDS)
            try:
                self._spawn()
            except OSError:
                log.exception("starting the workers process failed")

    def stop(self) -> None:
        """SIGTERM the child (it finishes its current batch), SIGKILL it if it does not exit."""
        with self._lock:
            self._stopping.set()
            process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                log.error("the workers process did not stop in time; killing it")
                process.kill()
                process.wait()
        if self._watchdog is not None:
            self._watchdog.join(timeout=STOP_TIMEOUT_SECONDS)
