"""The ``propagation`` section: how long a change takes to reach a channel at a steady load
(DESIGN's third promise, issue 14 item 5).

``stocksync serve`` (one API process, the workers process beside it, so the webhooks worker
runs) is driven open loop: reservations of one unit at a fixed rate (each due on a schedule,
sent whether or not the previous ones answered), spread over a few SKUs at one store. A receiver
subscribed to ``availability.changed`` and ``reservation.held`` and an SSE client on the store's
event stream (both in a process of their own, see bench.harness.feed_receiver) time every message
on arrival: ``now - data.at``, the change's Redis server time. That is the primary figure.

The server's own histogram ``stocksync_propagation_seconds{sink}`` (webhook: the endpoint
answered 2xx, from the workers' /metrics; sse: the event was written, from the API's) is read
before and after the load, and its p50/p99 are interpolated linearly within the buckets of the
difference, so they are only as fine as the buckets (5, 10, 25, 50, 100 ms, ...).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.harness.aio import run_async
from bench.harness.config import CHANNEL, TTL_SECONDS, Profile
from bench.harness.cpu import CpuWindow, self_cpu_seconds
from bench.harness.feed_receiver import FeedReceiver, Received
from bench.harness.report import RESULTS_DIR, Row
from bench.harness.servers import HOST, ApiServer, BenchRedis, create_api_key, free_port
from bench.harness.stats import Latency

LOCATION = "bench-prop"
SKUS = 20
ON_HAND = 1_000_000_000
EVENTS = ("availability.changed", "reservation.held")
FSYNC = "always"
SETTLE_S = 30.0  # bound on waiting for the feed to catch up after the load
WARMUP = 20  # reservations before the measurement, until both sinks have delivered

Buckets = dict[str, list[tuple[float, float]]]  # sink -> [(upper bound, cumulative count)]


def histogram(text: str) -> Buckets:
    """The propagation histogram's cumulative buckets by sink, from a Prometheus exposition."""
    found: Buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name != "stocksync_propagation_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                found.setdefault(sample.labels["sink"], []).append((bound, sample.value))
    return {sink: sorted(b) for sink, b in found.items()}


def bucket_delta(after: Buckets, before: Buckets) -> Buckets:
    """What was observed between two readings of the same histogram."""
    out: Buckets = {}
    for sink, buckets in after.items():
        earlier = dict(before.get(sink, []))
        out[sink] = [(bound, count - earlier.get(bound, 0.0)) for bound, count in buckets]
    return out


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Quantile ``q`` (0..1) in seconds, linear within the bucket it falls in (Prometheus's
    histogram_quantile); the last finite bound when it falls in +Inf; NaN when empty."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def _reservation(n: int, tag: str) -> dict[str, object]:
    return {
        "reservation_id": f"bench-prop-{tag}-{n}",
        "channel": CHANNEL,
        "lines": [{"sku": f"PROP-{n % SKUS}", "location_id": LOCATION, "qty": 1}],
        "ttl_seconds": TTL_SECONDS,
    }


async def _open_loop(
    base_url: str, key: str, rate: int, seconds: float, tag: str
) -> tuple[int, int, float]:
    """(sent, errors, seconds sending): reservations due every 1/rate s from the start."""
    total = int(rate * seconds)
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=10.0
    ) as client:

        async def one(n: int) -> None:
            nonlocal errors
            try:
                answer = await client.post("/v1/reservations", json=_reservation(n, tag))
                errors += answer.status_code != 201
            except httpx.HTTPError:
                errors += 1

        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks = []
        for n in range(total):
            delay = started + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule itself, not a stand-in for a sync
            tasks.append(asyncio.create_task(one(n)))
        sending = loop.time() - started
        await asyncio.gather(*tasks)
    return total, errors, sending


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)  # bounded poll of another process's counters
    return condition()


def _setup(server: ApiServer, receiver_url: str) -> None:
    with server.client() as client:
        client.put(
            f"/v1/locations/{LOCATION}",
            json={"name": "Bench store", "kind": "store", "lat": 52.5, "lon": 13.4, "ship": True},
        ).raise_for_status()
        for k in range(SKUS):
            client.put(
                f"/v1/stock/{LOCATION}/PROP-{k}", json={"on_hand": ON_HAND}
            ).raise_for_status()
        client.post(
            "/v1/webhooks", json={"url": receiver_url, "events": list(EVENTS)}
        ).raise_for_status()


def _warm_up(server: ApiServer, key: str, receiver: FeedReceiver) -> None:
    """Small bursts until both sinks deliver: the webhooks worker may start after the API (its
    consumer group then begins at "now") and the SSE stream begins at "now" too."""
    deadline = time.monotonic() + SETTLE_S
    burst = 0
    while not all(receiver.count().values()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no message arrived: {receiver.count()}; {server.status()}")
        run_async(_open_loop(server.base_url, key, WARMUP * 5, 0.2, f"warm{burst}"))
        burst += 1
        _wait(lambda: all(receiver.count().values()), 1.0)


def _metrics(url: str) -> Buckets:
    with httpx.Client(timeout=10.0) as client:
        answer = client.get(url)
        answer.raise_for_status()
        return histogram(answer.text)


def _row(
    scenario: str, samples_ms: list[float], rate: int, received: int, extra: dict[str, object]
) -> Row:
    latency = Latency.of_seconds([s / 1000 for s in samples_ms])
    return Row(
        section="propagation",
        scenario=scenario,
        fsync=FSYNC,
        workers=1,
        concurrency=f"{rate}/s open loop",
        ops_s=float(rate),
        p50_ms=latency.p50,
        p99_ms=latency.p99,
        extra={"offered_per_s": rate, "received": received, "max_ms": latency.max, **extra},
    )


def _hist_row(sink: str, buckets: list[tuple[float, float]], rate: int) -> Row:
    observed = int(buckets[-1][1]) if buckets else 0
    return Row(
        section="propagation",
        scenario=f"{sink}: stocksync_propagation_seconds (bucket-interpolated)",
        fsync=FSYNC,
        workers=1,
        concurrency=f"{rate}/s open loop",
        ops_s=float(rate),
        p50_ms=bucket_quantile(buckets, 0.5) * 1000,
        p99_ms=bucket_quantile(buckets, 0.99) * 1000,
        extra={"offered_per_s": rate, "received": observed, "interpolated": True},
    )


def _trend(samples_ms: list[float]) -> dict[str, object]:
    """p50 of the first and the last fifth of the arrivals: a backlog growing over the run (the
    feed slower than the load) shows as a later fifth far above the first."""
    fifth = len(samples_ms) // 5
    if fifth == 0:
        return {}
    first = Latency.of_seconds([s / 1000 for s in samples_ms[:fifth]])
    last = Latency.of_seconds([s / 1000 for s in samples_ms[-fifth:]])
    return {"first_fifth_p50_ms": round(first.p50, 1), "last_fifth_p50_ms": round(last.p50, 1)}


def rows_of(
    got: Received, hist: Buckets, rate: int, sent: int, errors: int, sending_s: float
) -> list[Row]:
    common: dict[str, object] = {
        "reservations": sent,
        "errors": errors,
        "sending_s": round(sending_s, 2),
    }
    webhook = [v for samples in got.webhook_ms.values() for v in samples]
    by_type = {t: len(v) for t, v in sorted(got.webhook_ms.items())}
    rows = [
        _row(
            "webhook: receiver, now - data.at (end to end)",
            webhook,
            rate,
            len(webhook),
            {**common, "by_type": by_type, "duplicates": got.duplicates},
        )
    ]
    for event_type, samples in sorted(got.webhook_ms.items()):
        rows.append(
            _row(
                f"webhook {event_type}: receiver",
                samples,
                rate,
                len(samples),
                {**common, **_trend(samples)},
            )
        )
    sse = [v for samples in got.sse_ms.values() for v in samples]
    if sse or got.sse_error:
        extra = {**common, "by_kind": {k: len(v) for k, v in sorted(got.sse_ms.items())}}
        if got.sse_error:
            extra["sse_error"] = got.sse_error
        rows.append(_row("sse: client, now - at (end to end)", sse, rate, len(sse), extra))
    for sink in ("webhook", "sse"):
        if sink in hist:
            rows.append(_hist_row(sink, hist[sink], rate))
    for row in rows:
        row.errors = errors
    return rows


def run(profile: Profile, tmp_dir: Path | None, log: Callable[[str], None]) -> list[Row]:
    rate, seconds = profile.propagation_rate, profile.propagation_seconds
    log(f"propagation: {rate} reservations/s for {seconds:g} s, change feed and SSE timed")
    with BenchRedis(FSYNC, tmp_dir) as redis:
        data_dir = redis.dir / "api"
        key = create_api_key(redis.url, data_dir)
        log_path = RESULTS_DIR / "logs" / "serve-propagation.log"
        server = ApiServer(redis.url, data_dir, 1, key, keep_log=log_path)
        server.env["STOCKSYNC_WEBHOOK_ALLOW_PRIVATE"] = "true"  # the receiver is on loopback
        server.worker_metrics_port = free_port()
        receiver_port = free_port()
        with server:
            workers_metrics = f"http://{HOST}:{server.worker_metrics_port}/metrics"
            sse_url = f"{server.base_url}/v1/locations/{LOCATION}/events"
            _setup(server, f"http://{HOST}:{receiver_port}/hook")
            with FeedReceiver(receiver_port, sse_url, key) as receiver:
                _warm_up(server, key, receiver)
                _wait(_settled(receiver), SETTLE_S)  # the warm-up's tail, before the reset
                receiver.reset()
                before = {
                    **_metrics(workers_metrics),
                    **_sse(_metrics(f"{server.base_url}/metrics")),
                }
                window = CpuWindow(server.cpu_groups(redis)).start()
                load_cpu = self_cpu_seconds()
                sent, errors, sending_s = run_async(
                    _open_loop(server.base_url, key, rate, seconds, "run")
                )
                settled = _settled(receiver)
                _wait(settled, SETTLE_S)
                cpu = window.stop(self_cpu_seconds() - load_cpu).shares()
                after = {
                    **_metrics(workers_metrics),
                    **_sse(_metrics(f"{server.base_url}/metrics")),
                }
                got = receiver.stop()
    rows = rows_of(got, bucket_delta(after, before), rate, sent, errors, sending_s)
    for row in rows:  # over the load and the feed catching up after it
        row.cpu = cpu
    return rows


def notes(rows: list[Row]) -> list[str]:
    """What the propagation rows counted and how, under the result table."""
    lines = []
    for row in rows:
        if row.section != "propagation":
            continue
        x = row.extra
        detail = f"{row.scenario}: {x['received']:,} messages at {x['offered_per_s']}/s offered"
        if "reservations" in x:
            detail += f" ({x['reservations']:,} reservations, errors {x['errors']})"
        for name in ("by_type", "by_kind", "duplicates", "sse_error"):
            if name in x:
                detail += f"; {name} {x[name]}"
        if "first_fifth_p50_ms" in x:
            detail += (
                f"; p50 of the first fifth of arrivals {x['first_fifth_p50_ms']} ms, of the last"
                f" {x['last_fifth_p50_ms']} ms"
            )
        lines.append(detail)
    if lines:
        lines.append(
            "propagation rows: end to end = now - the change's Redis server time (data.at),"
            " taken on arrival in a receiver process of its own (webhook endpoint answering 204,"
            " SSE client on the store's /v1/locations/{id}/events); the histogram rows are"
            " stocksync_propagation_seconds read before and after the load, p50/p99 interpolated"
            " linearly within its buckets (5 ms ... 60 s), so coarse; ops/s = the offered rate."
        )
    return lines


def _sse(buckets: Buckets) -> Buckets:
    """The API's reading holds the sse sink; the workers' the webhook sink."""
    return {sink: b for sink, b in buckets.items() if sink == "sse"}


def _settled(receiver: FeedReceiver) -> Callable[[], bool]:
    """True once the receiver's counts stopped moving for a second."""
    last: dict[str, object] = {"count": None, "since": time.monotonic()}

    def check() -> bool:
        now = receiver.count()
        if now != last["count"]:
            last.update(count=now, since=time.monotonic())
            return False
        return time.monotonic() - float(str(last["since"])) >= 1.0

    return check
