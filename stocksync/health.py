"""Readiness and status: what ``GET /readyz`` answers and ``stocksync status`` prints.

Required for readiness (``ready`` false and ``503`` when one fails), because no request can
be served without them:

- ``redis``: answers a PING;
- ``database``: answers a query (a sale is written to the ledger before it is acknowledged).

Reported only, because the API serves correctly without them and taking it out of a load
balancer would turn a background problem into an outage (alert on them instead):

- ``scripts``: the Lua scripts Redis has (SCRIPT EXISTS), with their version. A missing one is
  loaded again by its first call; all go missing when Redis restarts or fails over.
- ``ledger_copy``: the ledger copy's consumer group on the outbox exists and a consumer of it
  read within ``LEDGER_CONSUMER_IDLE_SECONDS_MAX``, and how far behind it is. The workers may
  run in another process (``stocksync worker``), or not yet (the group appears at their start).

``stocksync status`` adds the SKUs frozen because Redis went back in time, and the newest
audit's drift.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.engine import Engine

from stocksync import __version__
from stocksync.config import Settings
from stocksync.domain.model import DEFAULT_DOMAIN
from stocksync.recovery.audit import AuditSummary, last_audits, summed
from stocksync.store.outbox import Consumer, GroupLag
from stocksync.store.recovery import RecoveryOps
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_copy import GROUP as LEDGER_GROUP

CHECK_TIMEOUT_SECONDS = 2.0  # a dependency slower than this is reported as failing
CONSUMERS_SHOWN_MAX = 10  # a group keeps a consumer per process that ever ran: show the newest
REGRESSED_SHOWN_MAX = 50
DOMAINS_SHOWN_MAX = 50  # per-domain ledger lag shown by /readyz and `stocksync status`
ERROR_MAX_CHARS = 300


@dataclass(frozen=True)
class Check:
    """One dependency: ``state`` is ``ok`` or says what is wrong."""

    state: str
    required: bool
    details: dict[str, Any] = field(default_factory=dict)
    # The failure's message: for an operator (`stocksync status`), not for /readyz, which
    # answers anyone and should not show host names and paths.
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, Check]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks.values() if check.required)

    def as_json(self) -> dict[str, Any]:
        """``checks`` holds the required dependencies' states (the body /readyz always had),
        ``reported`` the others', ``details`` what each check measured."""
        return {
            "ready": self.ready,
            "checks": {name: c.state for name, c in self.checks.items() if c.required},
            "reported": {name: c.state for name, c in self.checks.items() if not c.required},
            "details": {name: c.details for name, c in self.checks.items()},
        }


@dataclass(frozen=True)
class Status:
    """Readiness and what an operator checks next."""

    readiness: Readiness
    regressed: list[str]  # sorted, at most REGRESSED_SHOWN_MAX
    regressed_count: int
    audit: AuditSummary | None  # every domain's newest audit added up
    now_ms: int  # Redis server time; 0 when Redis did not answer
    regressed_by_domain: dict[str, int] = field(default_factory=dict)  # domains with some
    audits: dict[str, AuditSummary] = field(default_factory=dict)  # each domain's newest

    @property
    def audit_age_seconds(self) -> float | None:
        if self.audit is None or not self.now_ms:
            return None
        return max(0, self.now_ms - self.audit.at_ms) / 1000

    def as_json(self) -> dict[str, Any]:
        errors = {name: c.error for name, c in self.readiness.checks.items() if c.error}
        return {
            **self.readiness.as_json(),
            "errors": errors,
            "regressed_skus": {
                "count": self.regressed_count,
                "skus": self.regressed,
                "by_domain": self.regressed_by_domain,
            },
            "last_audit": None
            if self.audit is None
            else {
                **asdict(self.audit),
                "age_seconds": self.audit_age_seconds,
                "by_domain": {d: asdict(a) for d, a in self.audits.items()},
            },
        }


def _ms_since(started: float) -> float:
    return round((perf_counter() - started) * 1000, 2)


async def check_redis(store: RedisStockStore) -> Check:
    started = perf_counter()
    await store.ping()
    return Check("ok", True, {"latency_ms": _ms_since(started)})


async def check_database(engine: Engine) -> Check:
    def query() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    started = perf_counter()
    await anyio.to_thread.run_sync(query, abandon_on_cancel=True)
    return Check("ok", True, {"dialect": engine.dialect.name, "latency_ms": _ms_since(started)})


async def check_scripts(store: RedisStockStore) -> Check:
    """This build's function library on the server, and other builds' libraries beside it."""
    libraries = await store.libraries()
    loaded = store.library.name in libraries
    details = {
        "version": __version__,
        "library": store.library.name,
        "loaded": loaded,
        "other_libraries": [name for name in libraries if name != store.library.name],
    }
    return Check("ok" if loaded else "not_loaded", False, details)


def ledger_copy_check(
    consumers: list[Consumer] | None, lag: GroupLag | None, idle_seconds_max: float
) -> Check:
    """The ledger copy's state from its group's consumers (None: no group) and lag."""
    if consumers is None:
        return Check("absent", False, {"group": LEDGER_GROUP})
    alive = [c for c in consumers if c.idle_ms < idle_seconds_max * 1000]
    details: dict[str, Any] = {
        "group": LEDGER_GROUP,
        "consumers_alive": len(alive),
        "consumers_idle": len(consumers) - len(alive),
        "consumers": [
            {"name": c.name, "idle_seconds": c.idle_ms / 1000, "pending": c.pending}
            for c in consumers[:CONSUMERS_SHOWN_MAX]
        ],
        "lag_events": None if lag is None else lag.events,
        "lag_seconds": None if lag is None else lag.seconds,
    }
    return Check("ok" if alive else "no_live_consumer", False, details)


async def check_ledger_copy(store: RedisStockStore, idle_seconds_max: float) -> Check:
    """The ledger copy of every stock domain: the default domain's consumers as before,
    ``domains`` with each domain's lag (at most DOMAINS_SHOWN_MAX), and the lag over all of
    them (events summed, seconds the worst). A domain whose group has no live consumer makes
    the state ``no_live_consumer``; one with no group yet (no event so far) is left out."""
    found: dict[str, tuple[list[Consumer] | None, GroupLag | None]] = {}
    for domain in await store.domains():
        outbox = store.outbox_of(domain)
        consumers = await outbox.consumers(LEDGER_GROUP)
        found[domain] = (
            consumers,
            None if consumers is None else await outbox.group_lag(LEDGER_GROUP),
        )
    check = ledger_copy_check(*found[DEFAULT_DOMAIN], idle_seconds_max)
    if len(found) == 1:
        return check
    per_domain = {d: ledger_copy_check(c, lag, idle_seconds_max) for d, (c, lag) in found.items()}
    lags = [lag for _, lag in found.values() if lag is not None]
    details = {
        **check.details,
        "lag_events": sum(lag.events for lag in lags) if lags else None,
        "lag_seconds": max(lag.seconds for lag in lags) if lags else None,
        "domains": {
            d: {
                "state": c.state,
                "lag_events": c.details.get("lag_events"),
                "lag_seconds": c.details.get("lag_seconds"),
            }
            for d, c in list(per_domain.items())[:DOMAINS_SHOWN_MAX]
        },
    }
    state = check.state
    if state == "ok" and any(c.state == "no_live_consumer" for c in per_domain.values()):
        state = "no_live_consumer"
    return Check(state, False, details)


async def _bounded(run: Callable[[], Awaitable[Check]], required: bool) -> Check:
    """``run`` within CHECK_TIMEOUT_SECONDS; a failure becomes the check's state."""
    try:
        with anyio.fail_after(CHECK_TIMEOUT_SECONDS):
            return await run()
    except TimeoutError:
        return Check("error: timeout", required, {"timeout_seconds": CHECK_TIMEOUT_SECONDS})
    except Exception as exc:  # readiness reports any failure, whatever its type
        return Check(f"error: {type(exc).__name__}", required, error=str(exc)[:ERROR_MAX_CHARS])


async def readiness(store: RedisStockStore, engine: Engine, settings: Settings) -> Readiness:
    """Every check, run together, each bounded in time."""
    runs: dict[str, tuple[Callable[[], Awaitable[Check]], bool]] = {
        "redis": (lambda: check_redis(store), True),
        "database": (lambda: check_database(engine), True),
        "scripts": (lambda: check_scripts(store), False),
        "ledger_copy": (
            lambda: check_ledger_copy(store, settings.ledger_consumer_idle_seconds_max),
            False,
        ),
    }
    checks: dict[str, Check] = {}

    async def one(name: str, run: Callable[[], Awaitable[Check]], required: bool) -> None:
        checks[name] = await _bounded(run, required)

    async with anyio.create_task_group() as tg:
        for name, (run, required) in runs.items():
            tg.start_soon(one, name, run, required)
    return Readiness({name: checks[name] for name in runs})


async def status(store: RedisStockStore, engine: Engine, settings: Settings) -> Status:
    """Readiness, the regressed SKUs and the newest audit (what `stocksync status` prints)."""
    ready = await readiness(store, engine, settings)
    if not ready.checks["redis"].ok:
        return Status(ready, [], 0, None, 0)
    regressed: list[str] = []
    by_domain: dict[str, int] = {}
    for domain in await store.domains(fresh=True):
        frozen = sorted(await RecoveryOps(store, domain).regressed())
        if frozen:
            by_domain[domain] = len(frozen)
            # Another domain's SKUs are named with their domain: the same SKU is in many.
            regressed += frozen if domain == DEFAULT_DOMAIN else [f"{domain}/{s}" for s in frozen]
    audits = await last_audits(store)
    seconds, micros = await store.client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    return Status(
        ready,
        regressed[:REGRESSED_SHOWN_MAX],
        len(regressed),
        summed(audits),
        now_ms,
        by_domain,
        audits,
    )
