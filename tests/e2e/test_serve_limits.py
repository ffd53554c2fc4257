"""Limits of the HTTP server itself, through a real `stocksync serve` subprocess."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from time import monotonic
from urllib.parse import urlsplit

import httpx
import pytest

from stocksync.store.embedded import EmbeddedRedis
from tests.support.serve import running_serve, serve_env

pytestmark = pytest.mark.slow

HEAD_TIMEOUT_SECONDS = 1.0
KEEPALIVE_SECONDS = 1.5  # longer than the head timeout: a stream must outlive it
WAIT_SECONDS = 10.0  # the bound on every blocking read below


@dataclass(frozen=True)
class Server:
    url: str
    key: str

    def connect(self) -> socket.socket:
        parts = urlsplit(self.url)
        sock = socket.create_connection((parts.hostname, parts.port), timeout=WAIT_SECONDS)
        sock.settimeout(WAIT_SECONDS)  # a read that waits longer raises: the test fails
        return sock


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    deployment = serve_env(redis_server.url, tmp_path_factory.mktemp("serve"), "limits")
    deployment.env["STOCKSYNC_HEADER_READ_TIMEOUT_SECONDS"] = str(HEAD_TIMEOUT_SECONDS)
    deployment.env["STOCKSYNC_EVENT_KEEPALIVE_SECONDS"] = str(KEEPALIVE_SECONDS)
    key = deployment.create_key("limits", "read")
    with running_serve(deployment) as url:
        yield Server(url, key)


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started, received = monotonic(), b""
    while chunk := sock.recv(4096):
        received += chunk
    return received, monotonic() - started


def test_serve_closes_a_connection_whose_request_head_is_late(server: Server) -> None:
    with server.connect() as slow, server.connect() as silent:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: stocksync\r\nX-Slow: a")
        # The server still answers everyone else meanwhile.
        assert httpx.get(f"{server.url}/healthz", timeout=WAIT_SECONDS).status_code == 200
        received, took = read_until_closed(slow)
        assert received.startswith(b"HTTP/1.1 408 "), received
        assert b'"code": "request_timeout"' in received
        assert took < HEAD_TIMEOUT_SECONDS + 3
        assert read_until_closed(silent)[0].startswith(b"HTTP/1.1 408 ")


def test_serve_keeps_a_connection_whose_request_head_arrived(server: Server) -> None:
    parts = urlsplit(server.url)
    connection = HTTPConnection(parts.hostname or "", parts.port, timeout=WAIT_SECONDS)
    try:
        for _ in range(2):  # keep-alive: the second head is timed from its own first byte
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b'{"status":"ok"}')
    finally:
        connection.close()
    # A stream answers long after its head arrived: the head timeout does not cut it.
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx.stream(
        "GET", f"{server.url}/v1/locations/store-a/events", headers=headers, timeout=WAIT_SECONDS
    ) as r:
        assert r.status_code == 200
        assert next(r.iter_lines()) == ": keepalive"
