"""FastAPI dependencies: the store, the settings, and the authenticated principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stocksync.auth.principal import Principal
from stocksync.auth.repository import SqlApiKeys
from stocksync.config import Settings
from stocksync.domain.errors import Unauthorized
from stocksync.metrics import Metrics
from stocksync.store.redis_store import RedisStockStore

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ssk_…`")


def get_store(request: Request) -> RedisStockStore:
    store: RedisStockStore = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthorized("missing bearer API key")
    keys: SqlApiKeys = request.app.state.api_keys
    principal = await keys.verify(credentials.credentials)
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    return principal


def scoped(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates and requires ``scope`` (``admin`` implies every scope)."""

    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        principal.require(scope)
        return principal

    return dependency


StoreDep = Annotated[RedisStockStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
Reader = Annotated[Principal, Depends(scoped("read"))]
Reserver = Annotated[Principal, Depends(scoped("reserve"))]
StockWriter = Annotated[Principal, Depends(scoped("stock:write"))]
Admin = Annotated[Principal, Depends(scoped("admin"))]
