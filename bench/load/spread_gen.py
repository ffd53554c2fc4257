"""The spread-load generator process: closed-loop shoppers over many SKUs and locations.

Each of a process's connections is one shopper that, back to back, either reads a SKU's
availability or reserves one unit at a random position and then releases it, or confirms it and
then fulfils or releases it. Latency is timed per operation. Kept free of heavy imports:
``spawn`` children import this module.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from bench.load.loadgen import RawConnection

OPERATIONS = ("availability", "reserve", "confirm", "fulfill", "release")
READ_SHARE = 0.5  # of a shopper's turns: an availability read, else a reservation
RELEASE_SHARE = 0.4  # of holds: released straight away; the rest are confirmed
FULFILL_SHARE = 2 / 3  # of confirmed holds: fulfilled; the rest are released
EXPECTED = {"availability": 200, "reserve": 201, "confirm": 200, "fulfill": 200, "release": 200}


@dataclass(frozen=True)
class SpreadSpec:
    index: int
    host: str
    port: int
    key: str
    skus: int  # SKU ids are sku_name(0 .. skus-1)
    locations: int  # location ids are location_name(0 .. locations-1)
    connections: int
    start_at: float  # time.monotonic() (one clock for all processes)
    warmup_s: float
    duration_s: float
    tag: str


@dataclass
class SpreadResult:
    index: int
    latencies: dict[str, list[float]] = field(default_factory=dict)  # s, expected answers
    short: int = 0  # 409 insufficient_stock (a position ran out: not an error)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0


def sku_name(i: int) -> str:
    return f"SP-{i:07d}"


def location_name(i: int) -> str:
    return f"sp-loc-{i:02d}"


class Shopper:
    def __init__(self, spec: SpreadSpec, number: int, result: SpreadResult) -> None:
        self.spec = spec
        self.number = number
        self.result = result
        self.rng = random.Random(f"{spec.tag}-{spec.index}-{number}")
        self.head = f"Host: {spec.host}:{spec.port}\r\nAuthorization: Bearer {spec.key}\r\n"
        self.turns = 0

    async def call(
        self, conn: RawConnection, op: str, method: str, path: str, body: bytes = b""
    ) -> int:
        request = f"{method} {path} HTTP/1.1\r\n{self.head}".encode()
        if method == "POST":
            request += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        began = time.monotonic()
        status, answer = await conn.request(request + b"\r\n" + body)
        ended = time.monotonic()
        window_start = self.spec.start_at + self.spec.warmup_s
        if began < window_start or ended > window_start + self.spec.duration_s:
            return status
        if status == EXPECTED[op]:
            self.result.latencies.setdefault(op, []).append(ended - began)
        elif op == "reserve" and status == 409 and b"insufficient_stock" in answer:
            self.result.short += 1
        else:
            self.result.errors += 1
            if len(self.result.error_samples) < 5:
                self.result.error_samples.append(f"{op} HTTP {status} {answer[:160]!r}")
        return status

    async def turn(self, conn: RawConnection) -> None:
        rng, spec = self.rng, self.spec
        sku = sku_name(rng.randrange(spec.skus))
        if rng.random() < READ_SHARE:
            await self.call(conn, "availability", "GET", f"/v1/availability?sku={sku}")
            return
        self.turns += 1
        rid = f"{spec.tag}-{spec.index}-{self.number}-{self.turns}"
        line = f'{{"sku":"{sku}","location_id":"{location_name(rng.randrange(spec.locations))}"'
        body = f'{{"reservation_id":"{rid}","channel":"web","lines":[{line},"qty":1}}],'
        body += '"ttl_seconds":600}'
        if await self.call(conn, "reserve", "POST", "/v1/reservations", body.encode()) != 201:
            return
        path = f"/v1/reservations/{rid}/"
        if rng.random() < RELEASE_SHARE:
            await self.call(conn, "release", "POST", path + "release", b"{}")
            return
        await self.call(conn, "confirm", "POST", path + "confirm", b"{}")
        last = "fulfill" if rng.random() < FULFILL_SHARE else "release"
        await self.call(conn, last, "POST", path + last, b"{}")

    async def run(self, conn: RawConnection) -> None:
        await asyncio.sleep(max(0.0, self.spec.start_at - time.monotonic()))
        end = self.spec.start_at + self.spec.warmup_s + self.spec.duration_s
        while time.monotonic() < end:
            await self.turn(conn)


async def generate(spec: SpreadSpec) -> SpreadResult:
    result = SpreadResult(spec.index)
    opened = await asyncio.gather(
        *(asyncio.open_connection(spec.host, spec.port) for _ in range(spec.connections))
    )
    conns = [RawConnection(reader, writer) for reader, writer in opened]
    try:
        shoppers = [Shopper(spec, n, result) for n in range(spec.connections)]
        running = asyncio.gather(*(s.run(c) for s, c in zip(shoppers, conns, strict=True)))
        await asyncio.sleep(max(0.0, spec.start_at + spec.warmup_s - time.monotonic()))
        cpu_start = time.process_time()  # the measurement window starts after the warm-up
        await running
        result.cpu_seconds = time.process_time() - cpu_start
    except Exception as exc:  # report it: the parent is waiting for a result
        result.errors += 1
        result.error_samples.append(f"generator failed: {exc!r}")
    finally:
        for conn in conns:
            conn.close()
    return result


def child_main(spec: SpreadSpec) -> SpreadResult:
    """Entry point of a generator process (uvloop when installed, like the API)."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        return runner.run(generate(spec))
