"""FastAPI dependencies: the app's services and the authenticated principal.

Routes reach the services through ``services(request)`` rather than one dependency each:
every dependency costs FastAPI work on each request, and the reserve path is hot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from stocksync.api.rate_limit import KeyRateLimiter
from stocksync.auth.principal import Principal
from stocksync.auth.repository import SqlApiKeys
from stocksync.config import Settings
from stocksync.domain.errors import Unauthorized
from stocksync.ledger.sale_commits import SaleCommitter
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.metrics import Metrics
from stocksync.store.base import ACTOR
from stocksync.store.redis_store import RedisStockStore

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ssk_…`")


@dataclass(frozen=True)
class Services:
    """What the lifespan opened: store, database, ledger, keys, settings, metrics, the
    per-key rate limiter and the sale committer (one per process and ledger)."""

    settings: Settings
    metrics: Metrics
    store: RedisStockStore
    engine: Engine
    api_keys: SqlApiKeys
    ledger: SqlLedger
    rate_limiter: KeyRateLimiter
    sales: SaleCommitter


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def scoped(scope: str, *or_scopes: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the bearer key and requires ``scope`` (or one of
    ``or_scopes``).

    ``admin`` implies every scope.
    """

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        key = None if credentials is None else credentials.credentials
        return await authenticate(services(request), key, scope, *or_scopes)

    return dependency


async def authenticate(svc: Services, key: str | None, scope: str, *or_scopes: str) -> Principal:
    """The principal of bearer ``key``, counted by the rate limiter, with ``scope`` (or one of
    ``or_scopes``); the request's actor from now on. The FastAPI dependency and the lean path
    both check here."""
    if key is None:
        raise Unauthorized("missing bearer API key")
    principal = await svc.api_keys.verify(key)
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    svc.rate_limiter.check(principal.key_id)
    principal.require(scope, *or_scopes)
    ACTOR.set(f"api:{principal.key_id}")  # this request's changes are recorded as this key's
    return principal


Reader = Annotated[Principal, Depends(scoped("read"))]
Reserver = Annotated[Principal, Depends(scoped("reserve"))]
StockWriter = Annotated[Principal, Depends(scoped("stock:write"))]
Admin = Annotated[Principal, Depends(scoped("admin"))]
