"""The ``webhooks`` section: Shopify ``orders/create`` deliveries per second through the real API.

A served ``stocksync serve`` (its own Redis, AOF ``always``) with the Shopify connector
configured takes signed ``orders/create`` deliveries for orders placed without a hold (the
connector reserves and confirms in one script call). Slices alternate with the baseline, a
plain ``POST /v1/reservations`` (one hold, one script call) on the same server from the same
client, so the ratio shows what the webhook path (HMAC, order parsing, the hold lookup, the
pipeline) costs over the bare reservation. A second row redelivers orders already applied
(the duplicate path: no write). Closed loop: ``concurrency`` requests in flight from one
asyncio httpx client in this process, which shares the cores with the server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.harness.config import CHANNEL, HOT_LOCATION, HOT_SKU, ON_HAND, TTL_SECONDS, Profile
from bench.harness.cpu import CpuSample, CpuWindow, PidSource, self_cpu_seconds
from bench.harness.report import RESULTS_DIR, Row
from bench.harness.servers import ApiServer, BenchRedis, create_api_key
from bench.harness.stats import Latency
from connectors.shopify.webhook import signature

SECRET = "bench-webhook-secret"
ITEM = "gid://shopify/InventoryItem/1"
WEBHOOK_URL = "/v1/connectors/shopify/webhook"

Request = Callable[[int], httpx.Request]  # request number -> the request to send


@dataclass
class Slice:
    """Answers of one closed-loop run."""

    seconds: float = 0.0
    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    cpu: CpuSample = field(default_factory=CpuSample)

    def __iadd__(self, other: Slice) -> Slice:
        self.cpu += other.cpu
        self.seconds += other.seconds
        self.ok += other.ok
        self.errors += other.errors
        self.latencies += other.latencies
        self.error_samples = (self.error_samples + other.error_samples)[:5]
        return self

    @property
    def ops_s(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


async def closed_loop(
    client: httpx.AsyncClient, make: Request, seconds: float, concurrency: int, start: int = 0
) -> Slice:
    """Keep ``concurrency`` requests in flight for ``seconds``; request numbers from ``start``."""
    result = Slice()
    numbers = itertools.count(start)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            request = make(next(numbers))
            sent = time.perf_counter()
            try:
                response = await client.send(request)
            except httpx.HTTPError as exc:
                result.errors += 1
                result.error_samples.append(repr(exc))
                continue
            if response.is_success:
                result.ok += 1
                result.latencies.append(time.perf_counter() - sent)
            else:
                result.errors += 1
                result.error_samples.append(f"{response.status_code} {response.text[:200]}")

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - began
    return result


def order_body(order_id: int, sku: str = HOT_SKU) -> bytes:
    """An ``orders/create`` payload of one unit, shaped like Shopify's (trimmed)."""
    return json.dumps(
        {
            "id": order_id,
            "name": f"#{order_id}",
            "note_attributes": [],
            "line_items": [
                {
                    "id": order_id * 10,
                    "sku": sku,
                    "quantity": 1,
                    "variant_id": 1,
                    "gift_card": False,
                }
            ],
        }
    ).encode()


def webhook_request(client: httpx.AsyncClient, tag: str, sku: str = HOT_SKU) -> Request:
    def make(n: int) -> httpx.Request:
        body = order_body(int(f"{tag}{n:09d}"), sku)
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": signature(SECRET, body),
            "X-Shopify-Webhook-Id": f"bench-{tag}-{n}",
        }
        return client.build_request("POST", WEBHOOK_URL, content=body, headers=headers)

    return make


def reservation_request(
    client: httpx.AsyncClient, tag: str, key: str, sku: str = HOT_SKU, location: str = HOT_LOCATION
) -> Request:
    def make(n: int) -> httpx.Request:
        body = {
            "reservation_id": f"bench-res-{tag}-{n}",
            "channel": CHANNEL,
            "lines": [{"sku": sku, "location_id": location, "qty": 1}],
            "ttl_seconds": TTL_SECONDS,
        }
        headers = {"Authorization": f"Bearer {key}"}
        return client.build_request("POST", "/v1/reservations", json=body, headers=headers)

    return make


def write_config(directory: Path, sku: str = HOT_SKU, location: str = HOT_LOCATION) -> Path:
    """The connectors config (and mapping file) the served API reads."""
    directory.mkdir(parents=True, exist_ok=True)
    mapping = directory / "shopify-map.toml"
    mapping.write_text(
        f'[skus]\n"{ITEM}" = "{sku}"\n[locations]\n"gid://shopify/Location/1" = "{location}"\n'
    )
    config = directory / "connectors.toml"
    config.write_text(
        "[shopify]\n"
        'shop_url = "http://127.0.0.1:9"\n'  # the push loop does not run in the API
        'access_token = "unused"\n'
        f'webhook_secret = "{SECRET}"\n'
        f'mapping_file = "{mapping}"\n'
    )
    return config


async def measure(
    base_url: str, key: str, profile: Profile, groups: dict[str, PidSource] | None = None
) -> tuple[Slice, Slice, Slice]:
    """Alternate webhook and baseline slices; then redeliver orders already applied. With
    ``groups`` (the server's processes by role) each slice carries their CPU."""

    async def timed_loop(
        client: httpx.AsyncClient, make: Request, seconds: float, concurrency: int
    ) -> Slice:
        window = CpuWindow(groups or {}).start()
        before = self_cpu_seconds()  # the client is this process: its CPU is the load's
        result = await closed_loop(client, make, seconds, concurrency)
        result.cpu = window.stop(self_cpu_seconds() - before)
        return result

    limits = httpx.Limits(max_connections=profile.webhook_concurrency)
    webhook, baseline, redelivery = Slice(), Slice(), Slice()
    conc, seconds = profile.webhook_concurrency, profile.webhook_seconds
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:
        warm = webhook_request(client, "9")
        await timed_loop(client, warm, profile.wrk_warmup_seconds, conc)
        first = Slice()
        for n in range(profile.webhook_rounds):
            measured = await timed_loop(client, webhook_request(client, f"1{n}"), seconds, conc)
            first = first if n else measured
            webhook += measured
            baseline += await timed_loop(
                client, reservation_request(client, f"r{n}", key), seconds, conc
            )
        again = webhook_request(client, "10")  # the first round's orders, from the start
        applied = max(1, first.ok)
        redelivery += await timed_loop(client, lambda n: again(n % applied), seconds, conc)
    return webhook, baseline, redelivery


def _row(scenario: str, measured: Slice, baseline: Slice, concurrency: int) -> Row:
    latency = Latency.of_seconds(measured.latencies)
    return Row(
        section="webhooks",
        scenario=scenario,
        fsync="always",
        workers=1,
        concurrency=str(concurrency),
        ops_s=measured.ops_s,
        p50_ms=latency.p50,
        p99_ms=latency.p99,
        baseline="POST /v1/reservations",
        baseline_ops_s=baseline.ops_s,
        errors=measured.errors,
        cpu=measured.cpu.shares() if measured.cpu.wall else {},
        extra={"requests": measured.ok, "error_samples": measured.error_samples},
    )


def run(stack: ExitStack, profile: Profile, tmp_dir: Path | None) -> tuple[list[Row], list[str]]:
    """Start a Redis and an API with the Shopify connector, measure, return rows and notes."""
    redis = stack.enter_context(BenchRedis("always", tmp_dir))
    data_dir = redis.dir / "webhooks"
    key = create_api_key(redis.url, data_dir)
    server = ApiServer(
        redis.url, data_dir, 1, key, keep_log=RESULTS_DIR / "logs" / "serve-webhooks.log"
    )
    server.env["STOCKSYNC_CONNECTORS_CONFIG"] = str(write_config(data_dir))
    with server:
        server.seed(HOT_LOCATION, HOT_SKU, ON_HAND)
        groups = server.cpu_groups(redis)
        webhook, baseline, redelivery = asyncio.run(measure(server.base_url, key, profile, groups))
    conc = profile.webhook_concurrency
    rows = [
        _row("webhook orders/create (reserve+confirm)", webhook, baseline, conc),
        _row("webhook orders/create redelivered", redelivery, baseline, conc),
    ]
    notes = [
        f"webhooks: {webhook.ok:,} orders/create deliveries in {webhook.seconds:.1f} s and"
        f" {baseline.ok:,} plain reservations in {baseline.seconds:.1f} s, alternating"
        f" {profile.webhook_rounds} x {profile.webhook_seconds:g} s slices, W=1, conc {conc},"
        " one in-process httpx client sharing the cores; redelivered = the same orders again"
        " (answered 'duplicate', nothing written)."
    ]
    return rows, notes
