"""A webhook endpoint and an SSE client in a process of their own, timing each message on arrival.

Why a process of its own: the load generator's event loop (and the GIL) would otherwise delay the
moment a message is seen, and that delay would be counted as propagation. The end-to-end figure
is ``now - data.at``: ``at`` is the Redis server time (ms) of the change the message reports,
carried in every change-feed body and every SSE event; both clocks are this machine's.

The endpoint is a bare asyncio HTTP/1.1 server answering ``204`` (keep-alive); it does not verify
signatures (the webhook tests do), only reads ``webhook-id`` to count duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import httpx

NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


@dataclass
class Received:
    """What arrived: latencies in ms by sink and event type, distinct webhook ids, duplicates."""

    webhook_ms: dict[str, list[float]] = field(default_factory=dict)  # by event type
    sse_ms: dict[str, list[float]] = field(default_factory=dict)  # by event kind
    webhook_ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    sse_error: str = ""

    def count(self) -> dict[str, int]:
        return {
            "webhook": sum(len(v) for v in self.webhook_ms.values()),
            "sse": sum(len(v) for v in self.sse_ms.values()),
        }


def _now_ms() -> float:
    return time.time() * 1000


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, got: Received
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            headers: dict[str, str] = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            arrived = _now_ms()
            writer.write(NO_CONTENT)
            message = json.loads(body)
            msg_id = headers.get("webhook-id", "")
            if msg_id in got.webhook_ids:
                got.duplicates += 1
            else:
                got.webhook_ids.add(msg_id)
                at = message["data"]["at"]
                got.webhook_ms.setdefault(message["type"], []).append(arrived - at)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _sse(url: str, key: str, got: Received) -> None:
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    timeout = httpx.Timeout(10.0, read=None)
    try:
        async with (
            httpx.AsyncClient(timeout=timeout) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            response.raise_for_status()
            kind = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    arrived = _now_ms()
                    at = json.loads(line[5:]).get("at")
                    if isinstance(at, int | float):
                        got.sse_ms.setdefault(kind, []).append(arrived - at)
    except (httpx.HTTPError, ValueError) as exc:
        got.sse_error = repr(exc)


async def _serve(port: int, sse_url: str, key: str, control: Connection) -> None:
    got = Received()
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, got), "127.0.0.1", port, reuse_address=True
    )
    sse = asyncio.create_task(_sse(sse_url, key, got)) if sse_url else None
    loop = asyncio.get_running_loop()
    asked: asyncio.Queue[str] = asyncio.Queue()
    loop.add_reader(control.fileno(), lambda: asked.put_nowait(control.recv()))
    control.send("ready")
    try:
        while (command := await asked.get()) != "stop":
            if command == "count":
                control.send(got.count())
            elif command == "reset":  # after a warm-up: keep only what follows
                got.webhook_ms.clear()
                got.sse_ms.clear()
                control.send(got.count())
    finally:
        loop.remove_reader(control.fileno())
        if sse is not None:
            sse.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sse
        server.close()
        await server.wait_closed()
    control.send(got)


def _main(port: int, sse_url: str, key: str, control: Connection) -> None:
    asyncio.run(_serve(port, sse_url, key, control))


class FeedReceiver:
    """Start with ``with``; ``count()`` while running; ``stop()`` returns everything received."""

    def __init__(self, port: int, sse_url: str = "", key: str = "") -> None:
        context = multiprocessing.get_context("spawn")
        self.control, child = context.Pipe()
        self.process = context.Process(target=_main, args=(port, sse_url, key, child), daemon=True)
        self.result: Received | None = None

    def __enter__(self) -> FeedReceiver:
        self.process.start()
        if not self.control.poll(30) or self.control.recv() != "ready":
            self.__exit__()
            raise RuntimeError("the feed receiver did not start")
        return self

    def count(self) -> dict[str, int]:
        self.control.send("count")
        found: dict[str, int] = self.control.recv()
        return found

    def reset(self) -> None:
        self.control.send("reset")
        self.control.recv()

    def stop(self) -> Received:
        if self.result is None:
            self.control.send("stop")
            if not self.control.poll(30):
                raise RuntimeError("the feed receiver did not answer")
            self.result = self.control.recv()
        return self.result

    def __exit__(self, *exc: Any) -> None:
        if self.process.is_alive() and self.result is None:
            with contextlib.suppress(OSError, RuntimeError):
                self.stop()
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
