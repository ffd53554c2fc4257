"""The ``http`` section: the HTTP path at saturation with wrk (closed loop), beside GET /healthz
on the same server.

wrk keeps ``connections`` requests in flight and sends the next one when an answer arrives, so
its latencies are those of a saturated server (and, unlike the open loop, omit queueing time a
real client would have seen while wrk waited).
"""

from __future__ import annotations

from bench.harness.config import Profile
from bench.harness.report import Row
from bench.harness.servers import ApiServer, BenchRedis
from bench.load.wrk_runner import WrkResult, run_wrk


class HttpBench:
    """The wrk scenarios of one server; run tags keep reservation ids unique within a Redis.

    A scenario and its GET /healthz baseline alternate in ``wrk_rounds`` slices, so a burst
    of load from elsewhere on the machine lands on both rather than on one.
    """

    def __init__(self, server: ApiServer, redis: BenchRedis, profile: Profile, label: str) -> None:
        self.server = server
        self.redis = redis
        self.profile = profile
        self.label = label
        self.runs = 0
        self.healthz: dict[int, WrkResult] = {}

    def wrk(self, script: str, path: str, connections: int, seconds: int) -> WrkResult:
        self.runs += 1
        tag = f"{self.label}-w{self.server.workers}-r{self.runs}"
        return run_wrk(self.server, self.redis, script, path, connections, seconds, tag)

    def warm_up(self) -> None:
        top = max(self.profile.http_concurrency)
        self.wrk("reserve.lua", "/v1/reservations", top, self.profile.wrk_warmup_seconds)

    def alternate(self, script: str, connections: int) -> tuple[WrkResult, WrkResult]:
        """(scenario, healthz baseline), each the sum of its slices."""
        seconds = self.profile.wrk_seconds
        results: dict[str, WrkResult] = {}
        for _ in range(self.profile.wrk_rounds):
            for name, path in (("healthz.lua", "/healthz"), (script, "/v1/reservations")):
                result = self.wrk(name, path, connections, seconds)
                results[name] = results[name] + result if name in results else result
        self.healthz[connections] = results["healthz.lua"]
        return results[script], results["healthz.lua"]

    def row(self, scenario: str, connections: int, result: WrkResult, **extra: object) -> Row:
        return Row(
            section="http",
            scenario=scenario,
            fsync=self.redis.appendfsync,
            workers=self.server.workers,
            concurrency=str(connections),
            ops_s=result.ok / result.seconds,
            p50_ms=result.percentile(50),
            p99_ms=result.percentile(99),
            errors=result.errors,
            cpu=result.cpu.shares(),
            extra={
                "p90_ms": result.percentile(90),
                "max_ms": result.max_ms,
                "seconds": round(result.seconds, 2),
                "api_process_cpu": result.cpu.process_shares("api"),
                **extra,
            },
        )

    def reserve(self, connections: int) -> list[Row]:
        result, base = self.alternate("reserve.lua", connections)
        row = self.row("HTTP POST /v1/reservations", connections, result)
        row.baseline, row.baseline_ops_s = "GET /healthz", base.ok / base.seconds
        return [self.row("HTTP GET /healthz (baseline)", connections, base), row]

    def pair(self, connections: int) -> Row:
        """Reserve+release; compared with the healthz baseline of the reserve run, if any."""
        if connections in self.healthz:
            base = self.healthz[connections]
            seconds = self.profile.wrk_seconds * self.profile.wrk_rounds
            result = self.wrk("pair.lua", "/v1/reservations", connections, seconds)
        else:
            result, base = self.alternate("pair.lua", connections)
        row = self.row(
            "HTTP reserve+release (per request)",
            connections,
            result,
            pairs_s=round(result.released / result.seconds, 1),
        )
        row.ops_s = (result.ok + result.released) / result.seconds
        row.baseline, row.baseline_ops_s = "GET /healthz", base.ok / base.seconds
        return row


def run(server: ApiServer, redis: BenchRedis, profile: Profile, label: str) -> list[Row]:
    bench = HttpBench(server, redis, profile, label)
    bench.warm_up()
    rows = []
    for connections in profile.http_concurrency:
        rows += bench.reserve(connections)
    for connections in profile.http_pair_concurrency:
        rows.append(bench.pair(connections))
    return rows
