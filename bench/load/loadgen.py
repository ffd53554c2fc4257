"""The open-loop generator process: sends reservations on a fixed schedule (child side).

Request ``i`` of a process is due at ``start + offset + i / rate`` whatever happened to earlier
requests; its latency runs from that due time, so a stalled server is charged for the whole
queue it built (no coordinated omission). Two clients: ``raw`` (asyncio streams, HTTP/1.1
keep-alive, ~no parsing) and ``httpx`` (``httpx.AsyncClient``). Kept free of heavy imports:
``spawn`` children import this module.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Protocol

MAX_CONNECTIONS = 256  # per process; waiting for one counts in the latency


@dataclass(frozen=True)
class GenSpec:
    index: int
    procs: int
    host: str
    port: int
    key: str
    sku: str
    location: str
    tag: str
    rate: float  # requests/s of this process
    warmup_s: float
    duration_s: float
    grace_s: float  # how long to wait for answers after the last send
    client: str  # "raw" | "httpx"
    connections: int  # opened before the start


@dataclass
class GenResult:
    index: int
    scheduled: int = 0  # requests due inside the measurement window
    latencies: list[float] = field(default_factory=list)  # s from due time, 201 answers
    send_lag: list[float] = field(default_factory=list)  # s from due time to the send
    errors: int = 0  # other statuses or transport errors
    unfinished: int = 0  # no answer within the grace period
    cpu_seconds: float = 0.0
    error_samples: list[str] = field(default_factory=list)


class Client(Protocol):
    async def open(self, connections: int) -> None: ...
    async def post(self, body: bytes) -> tuple[int, bytes]: ...
    async def close(self) -> None: ...


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reusable = True

    async def request(self, data: bytes) -> tuple[int, bytes]:
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lower = head.lower()
        start = lower.find(b"\r\ncontent-length:")
        if start < 0:
            raise RuntimeError("response without content-length")
        start += len(b"\r\ncontent-length:")
        length = int(head[start : head.index(b"\r\n", start)])
        payload = await self.reader.readexactly(length)
        self.reusable = b"\r\nconnection: close" not in lower
        return int(head[9:12]), payload

    def close(self) -> None:
        self.writer.close()


class RawClient:
    """Keep-alive connections, reused in turn (first-in first-out, so every connection and so
    every API worker that accepted one gets its share); a new one opens when all are busy."""

    def __init__(self, spec: GenSpec) -> None:
        self.spec = spec
        self.idle: deque[RawConnection] = deque()
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self.head = (
            f"POST /v1/reservations HTTP/1.1\r\nHost: {spec.host}:{spec.port}\r\n"
            f"Authorization: Bearer {spec.key}\r\nContent-Type: application/json\r\n"
            "Content-Length: "
        ).encode()

    async def _connect(self) -> RawConnection:
        reader, writer = await asyncio.open_connection(self.spec.host, self.spec.port)
        return RawConnection(reader, writer)

    async def open(self, connections: int) -> None:
        self.idle.extend(await asyncio.gather(*(self._connect() for _ in range(connections))))

    async def post(self, body: bytes) -> tuple[int, bytes]:
        async with self.slots:
            conn = self.idle.popleft() if self.idle else await self._connect()
            try:
                answer = await conn.request(self.head + b"%d\r\n\r\n" % len(body) + body)
            except BaseException:
                conn.close()
                raise
            if conn.reusable:
                self.idle.append(conn)
            else:
                conn.close()
            return answer

    async def close(self) -> None:
        for conn in self.idle:
            conn.close()


class HttpxClient:
    def __init__(self, spec: GenSpec) -> None:
        import httpx

        limits = httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
        )
        self.client = httpx.AsyncClient(
            base_url=f"http://{spec.host}:{spec.port}",
            headers={"Authorization": f"Bearer {spec.key}", "Content-Type": "application/json"},
            limits=limits,
            timeout=60.0,
        )

    async def open(self, connections: int) -> None:
        await asyncio.gather(*(self.client.get("/healthz") for _ in range(connections)))

    async def post(self, body: bytes) -> tuple[int, bytes]:
        response = await self.client.post("/v1/reservations", content=body)
        return response.status_code, response.content

    async def close(self) -> None:
        await self.client.aclose()


def body(spec: GenSpec, i: int) -> bytes:
    return (
        f'{{"reservation_id":"{spec.tag}-{spec.index}-{i}","channel":"web","lines":'
        f'[{{"sku":"{spec.sku}","location_id":"{spec.location}","qty":1}}],"ttl_seconds":600}}'
    ).encode()


async def generate(
    spec: GenSpec, ready: Queue[int], go: Event, start_at: Synchronized[float]
) -> GenResult:
    client: Client = RawClient(spec) if spec.client == "raw" else HttpxClient(spec)
    result = GenResult(spec.index)
    try:
        await client.open(spec.connections)
        ready.put(spec.index)
        if not await asyncio.get_running_loop().run_in_executor(None, go.wait, 120.0):
            return result
        period = 1.0 / spec.rate
        first = start_at.value + spec.index * period / spec.procs  # interleave the processes
        warm = round(spec.warmup_s * spec.rate)
        total = warm + round(spec.duration_s * spec.rate)
        result.scheduled = total - warm

        async def one(i: int, due: float) -> None:
            measured = i >= warm
            sent = time.monotonic()
            try:
                status, answer = await client.post(body(spec, i))
            except Exception as exc:  # any transport failure is an error of this request
                status, answer = 0, b""
                if len(result.error_samples) < 5:
                    result.error_samples.append(repr(exc))
            if not measured:
                return
            result.send_lag.append(sent - due)
            if status == 201:
                result.latencies.append(time.monotonic() - due)
            else:
                result.errors += 1
                if status and len(result.error_samples) < 5:
                    result.error_samples.append(f"HTTP {status} {answer[:160]!r}")

        cpu_start = time.process_time()
        pending: set[asyncio.Task[None]] = set()
        for i in range(total):
            if i == warm:
                cpu_start = time.process_time()  # the parent measures CPU from the same moment
            due = first + i * period
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            _, late = await asyncio.wait(pending, timeout=spec.grace_s)
            for task in late:
                task.cancel()
        result.unfinished = result.scheduled - len(result.latencies) - result.errors
        result.cpu_seconds = time.process_time() - cpu_start
        return result
    finally:
        await client.close()


def child_main(
    spec: GenSpec,
    ready: Queue[int],
    go: Event,
    start_at: Synchronized[float],
    results: Queue[GenResult],
) -> None:
    """Entry point of a generator process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops us
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        try:
            results.put(runner.run(generate(spec, ready, go, start_at)))
        except Exception as exc:  # report it: the parent is waiting for a result
            results.put(GenResult(spec.index, error_samples=[f"generator failed: {exc!r}"]))
