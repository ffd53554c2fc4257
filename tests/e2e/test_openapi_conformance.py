"""The API against its own OpenAPI document: schemathesis through a real `stocksync serve`.

Every phase the schemathesis CLI runs (examples, coverage, fuzzing, stateful), in process:
``schemathesis.engine.from_schema(schema).execute()`` is what ``st run`` executes. Its pytest
integration cannot load a schema from a fixture on this pytest (it sets a private node
attribute pytest 9 no longer has), and the schema needs the server a fixture starts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.engine import StopReason, from_schema
from schemathesis.engine import events as engine_events
from schemathesis.engine.recorder import ScenarioRecorder

from stocksync.store.embedded import EmbeddedRedis
from tests.support.serve import running_serve, serve_env

pytestmark = pytest.mark.slow

SEED = 20261128
MAX_EXAMPLES = 25  # per operation in the fuzzing phase: ~2,000 requests in all, ~45 s
EVENTS = "/v1/locations/{location_id}/events"

# Rules no JSON Schema of the request can state, so a schema-valid request may be refused
# (422): positive_data_acceptance is off for these operations, every other check stays on.
RULES_BEYOND_THE_SCHEMA = {
    ("POST", "/v1/reservations"): "ttl_seconds within the channel's configured maximum",
    ("POST", "/v1/reservations/{reservation_id}/confirm"): "pickup deadline, likewise",
    ("POST", "/v1/reservations/{reservation_id}/extend"): "ttl_seconds, likewise",
    ("POST", "/v1/reservations/{reservation_id}/move"): "to_location_id differs from the source",
    ("GET", "/v1/reservations"): "at_risk=true or customer_ref is given",
    ("GET", "/v1/locations/{location_id}/pickups"): "only active states make a pick list",
    ("GET", "/v1/availability"): "near is a point within Redis GEO's range; pool comes alone",
    ("PUT", "/v1/pools/{pool_id}"): "configured channels, each location once, in one domain",
    ("POST", "/v1/availability/batch"): "exactly one of pool and location_id, SKUs each once",
    ("POST", "/v1/transfers"): "from and to locations differ, SKUs each once",
    ("POST", "/v1/transfers/{transfer_id}/receive"): "SKUs each once",
    ("POST", "/v1/stock/{location_id}/{sku}/adjustments"): "supply_id only with a delta > 0",
    ("POST", "/v1/stock/{location_id}/{sku}/moves"): "from and to name different buckets",
    ("POST", "/v1/returns"): "each (sku, location_id) once in a return's lines",
}


@dataclass
class Outcome:
    """What a run found: failures by check, and the statuses answered."""

    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    stop_reason: StopReason | None = None

    def record(self, recorder: ScenarioRecorder) -> None:
        for interaction in recorder.interactions.values():
            if interaction.response is not None:
                self.statuses[interaction.response.status_code] += 1
        for checks in recorder.checks.values():
            for check in checks:
                if check.failure_info is not None:
                    failure = check.failure_info.failure
                    self.failures.append(
                        f"{recorder.label} [{check.name}] {failure.title}: {failure.message}\n"
                        f"    {check.failure_info.code_sample}"
                    )


def config(key: str) -> dict[str, Any]:
    """The run: every check, a fixed seed, and bounded by examples (a max-time would make
    the fuzzing and stateful phases repeat until it is spent, and the run time-dependent)."""
    exempt = [
        {
            "include-method": method,
            "include-path": path,
            "checks": {"positive_data_acceptance": {"enabled": False}},
        }
        for method, path in RULES_BEYOND_THE_SCHEMA
    ]
    return {
        "seed": SEED,
        "headers": {"Authorization": f"Bearer {key}"},
        "request-timeout": 10,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
        "checks": {"enabled": True},
        # A stream never ends: read it for a second (a keepalive comes every 0.2 s).
        "operations": [{"include-path": EVENTS, "request-timeout": 1}, *exempt],
    }


@dataclass(frozen=True)
class Server:
    url: str
    admin_key: str
    log: Path  # the server's output: a failure's message quotes its tracebacks


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    deployment = serve_env(redis_server.url, tmp_path_factory.mktemp("openapi"), "openapi")
    deployment.env["STOCKSYNC_EVENT_KEEPALIVE_SECONDS"] = "0.2"
    key = deployment.create_key("schemathesis", "admin")
    with running_serve(deployment) as url:
        yield Server(url, key, deployment.data_dir / "serve.log")


def server_errors(log: Path) -> str:
    """The tracebacks and error lines the server logged (a 500 says why only there)."""
    lines = log.read_text(errors="replace").splitlines()
    return "\n".join(ln for ln in lines if "Traceback" in ln or '"level":"error"' in ln)[-6000:]


def run_schemathesis(url: str, key: str) -> Outcome:
    schema = schemathesis.openapi.from_url(
        f"{url}/openapi.json", config=schemathesis.Config.from_dict(config(key))
    )
    outcome = Outcome()
    for event in from_schema(schema).execute():
        if isinstance(event, engine_events.ScenarioFinished):
            outcome.record(event.recorder)
        elif isinstance(event, engine_events.NonFatalError):
            outcome.failures.append(
                f"{event.label} error: {event.info.code_sample or event.value!r}"
            )
        elif isinstance(event, engine_events.FatalError):
            outcome.failures.append(f"fatal: {event.exception!r}")
        elif isinstance(event, engine_events.EngineFinished):
            outcome.stop_reason = event.stop_reason
            outcome.failures += [f"after the run: {f.title}: {f.message}" for f in event.failures]
    return outcome


@pytest.mark.timeout(300)  # a bound on the run, far above the ~60 s it takes
def test_api_answers_as_its_openapi_says(server: Server) -> None:
    outcome = run_schemathesis(server.url, server.admin_key)
    assert outcome.stop_reason is StopReason.COMPLETED
    assert not outcome.failures, "\n".join([*outcome.failures, server_errors(server.log)])
    assert not [status for status in outcome.statuses if status >= 500]
    assert outcome.statuses.total() > 1000, outcome.statuses  # it did exercise the API
    assert {200, 201, 404, 405, 409, 422} <= set(outcome.statuses), outcome.statuses
