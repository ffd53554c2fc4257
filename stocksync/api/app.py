"""The application factory: ``create_app(settings)`` wires Redis, SQL and the routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio
from fastapi import FastAPI

from stocksync import __version__, plugins
from stocksync.api.deps import Services
from stocksync.api.lean import LeanApp, LeanLane, routes_of
from stocksync.api.middleware import BodySizeLimit, RequestMetrics
from stocksync.api.problems import install_problem_handlers
from stocksync.api.rate_limit import KeyRateLimiter
from stocksync.api.request_log import RequestLog
from stocksync.api.routers import (
    availability,
    connectors,
    customers,
    events,
    incoming,
    inspection,
    locations,
    ops,
    pickups,
    pools,
    reservations,
    resourcing,
    returnable,
    returns,
    stock,
    stock_moves,
    transfers,
    webhooks,
)
from stocksync.auth.repository import SqlApiKeys
from stocksync.config import Settings
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.sale_commits import SaleCommitter
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.logs import configure_logging
from stocksync.metrics import Metrics
from stocksync.recovery.regression import (
    check_regression_domains,
    check_regression_once,
    domains_behind_ledger,
    regression_lease,
)
from stocksync.store.connection import open_store, redis_endpoint
from stocksync.ui.router import router as ui_router
from stocksync.workers.supervisor import run_workers

log = logging.getLogger(__name__)

# The start-up regression check (a module attribute, so a test can gate it).
startup_regression_check = check_regression_once


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        await anyio.to_thread.run_sync(create_tables, engine)
        async with (
            redis_endpoint(settings) as url,
            open_store(
                settings, url, observe=metrics.observe_script, observe_batch=metrics.observe_batch
            ) as store,
        ):
            ledger = SqlLedger(engine)
            keys = SqlApiKeys(engine, settings.api_key_cache_seconds)
            limiter = KeyRateLimiter(settings.rate_limit_per_key_per_second, settings.workers)
            sales = SaleCommitter(ledger, observe=metrics.observe_sale_commit)
            app.state.services = Services(
                settings, metrics, store, engine, keys, ledger, limiter, sales
            )
            # Serving never waits for the per-SKU regression check (seconds at a million
            # SKUs): it runs in the background and freezes what it finds. Only when the cheap
            # guard says Redis went back in time, writes could sell from stale stock before the
            # freeze, so then the check runs first (the frozen-SKU gauge is the workers' to keep).
            # Every stock domain is guarded: each has its own stream, seqs and ledger rows.
            behind = await domains_behind_ledger(store, engine)
            if behind:
                log.error(
                    "Redis is behind the ledger in domain(s) %s: checking every SKU of every "
                    "domain before serving",
                    ", ".join(behind),
                )
                await check_regression_domains(
                    store, engine, metrics, set_gauge=settings.run_workers
                )
            async with anyio.create_task_group() as tg:
                if not behind:
                    lease = regression_lease(store, settings.regression_check_seconds)
                    tg.start_soon(
                        partial(
                            startup_regression_check,
                            store,
                            engine,
                            metrics,
                            lease,
                            set_gauge=settings.run_workers,
                        )
                    )
                if settings.run_workers:
                    tg.start_soon(run_workers, store, ledger, engine, metrics, settings)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
                    await sales.aclose()
    finally:
        engine.dispose()


def create_app(settings: Settings | None = None, metrics: Metrics | None = None) -> FastAPI:
    """The API on ``settings``; ``metrics`` when the caller counts into them too (serve)."""
    settings = settings or Settings()
    metrics = metrics or Metrics()
    app = LeanApp(
        title="stocksync",
        version=__version__,
        summary="Real-time inventory and reservations for omnichannel retail",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_problem_handlers(app)
    app.state.event_streams = events.StreamSlots(
        settings.max_event_streams, settings.max_event_streams_per_key
    )
    app.state.connectors = plugins.load_configured(settings.connectors_config)
    for module in (
        locations,
        stock,
        inspection,
        stock_moves,
        incoming,
        returns,
        returnable,
        transfers,
        availability,
        pools,
        reservations,
        resourcing,
        pickups,
        customers,
        events,
        connectors,
        webhooks,
        ops,
    ):
        app.include_router(module.router)
    app.include_router(ui_router)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        path_limits={"/v1/connectors/": settings.max_webhook_bytes},
    )
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(RequestLog)  # outermost: its id is on every answer, even a 413
    if settings.lean_path:
        app.lane = LeanLane(
            routes_of(
                reservations.LEAN_ROUTES,
                stock.LEAN_ROUTES,
                availability.LEAN_ROUTES,
                pools.LEAN_ROUTES,
            )
        )
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory stocksync.api.app:app_from_env`` (multi-worker serve):
    each worker process configures its logging here, as ``stocksync serve`` did its own."""
    settings = Settings()
    configure_logging(settings)
    return create_app(settings)
