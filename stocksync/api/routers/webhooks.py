"""The signed change feed's subscriptions (admin): create, list, read, delete, dead letters,
replay. The worker (stocksync.webhooks.worker) does the sending."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from stocksync.api.deps import Admin, services
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.schemas import LocationId
from stocksync.api.strict_json import StrictJsonRoute
from stocksync.domain.errors import WebhookTargetRefused
from stocksync.domain.model import POOL_PATTERN
from stocksync.ledger.tables import WebhookMessage, WebhookSubscription
from stocksync.webhooks.delivery import now_ms
from stocksync.webhooks.messages import EVENT_TYPES
from stocksync.webhooks.subscriptions import DEAD, WebhookStore
from stocksync.webhooks.targets import TargetRefused
from stocksync.webhooks.worker import policy_of

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    responses=PROBLEM_RESPONSES,
    route_class=StrictJsonRoute,
)

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
SubscriptionPath = Annotated[str, Path(pattern=r"^wh_[0-9a-f]{24}$")]
MESSAGE_ID = r"^msg_[0-9a-f]{40}$"


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=8192, examples=["https://shop.example/hooks"])
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    pool: str | None = Field(default=None, pattern=POOL_PATTERN)
    location_ids: list[LocationId] | None = Field(default=None, min_length=1, max_length=500)


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    pool: str | None
    location_ids: list[str] | None
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="whsec_<base64>: shown once; verify signatures with it")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class MessageOut(BaseModel):
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    body: dict[str, object]


class MessageList(BaseModel):
    messages: list[MessageOut]


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_event_id: str = Field(pattern=MESSAGE_ID, description="a webhook-id already sent")


class ReplayOut(BaseModel):
    queued: int


def _out(row: WebhookSubscription) -> WebhookOut:
    return WebhookOut(
        id=row.id,
        url=row.url,
        events=json.loads(row.events),
        pool=row.pool,
        location_ids=None if row.location_ids is None else json.loads(row.location_ids),
        created_at=row.created_at,
    )


def _message(row: WebhookMessage) -> MessageOut:
    return MessageOut(
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        body=json.loads(row.body),
    )


def _hooks(request: Request) -> WebhookStore:
    return WebhookStore(services(request).engine)


@router.post("", status_code=201, response_model=WebhookCreated)
async def create_webhook(body: WebhookIn, principal: Admin, request: Request) -> WebhookCreated:
    """Subscribe ``url`` to ``events``, for one pool's and/or some locations' changes (all
    when neither is given). The answer holds the signing secret, shown this once. URLs must be
    http(s) and, unless the operator allows it, must not resolve to a private, loopback,
    link-local, multicast or reserved address (``422 webhook_target_refused``)."""
    settings = services(request).settings
    if body.location_ids is not None and len(body.location_ids) > settings.webhook_max_location_ids:
        raise WebhookTargetRefused(
            f"at most {settings.webhook_max_location_ids} location_ids per subscription"
        )
    try:
        await policy_of(settings).check(body.url)
    except TargetRefused as exc:
        raise WebhookTargetRefused(str(exc)) from None
    hooks = _hooks(request)
    row = await anyio.to_thread.run_sync(
        lambda: hooks.create(
            settings.namespace,
            body.url,
            body.events,
            body.pool,
            body.location_ids,
            limit=settings.webhook_max_subscriptions,
        )
    )
    return WebhookCreated(**_out(row).model_dump(), secret=row.secret)


@router.get("", response_model=WebhookList)
async def list_webhooks(principal: Admin, request: Request) -> WebhookList:
    """Every subscription of the namespace (without secrets)."""
    rows = await anyio.to_thread.run_sync(
        _hooks(request).all_of, services(request).settings.namespace
    )
    return WebhookList(webhooks=[_out(r) for r in rows])


@router.get("/{webhook_id}", response_model=WebhookOut)
async def get_webhook(
    webhook_id: SubscriptionPath, principal: Admin, request: Request
) -> WebhookOut:
    """One subscription (without its secret)."""
    ns = services(request).settings.namespace
    return _out(await anyio.to_thread.run_sync(_hooks(request).get, ns, webhook_id))


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(
    webhook_id: SubscriptionPath, principal: Admin, request: Request
) -> Response:
    """Stop sending and forget the subscription's queue."""
    ns = services(request).settings.namespace
    await anyio.to_thread.run_sync(_hooks(request).delete, ns, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/dead-letters", response_model=MessageList)
async def dead_letters(
    webhook_id: SubscriptionPath,
    principal: Admin,
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
) -> MessageList:
    """Messages given up on (every attempt failed, or the queue was full), oldest first."""
    ns = services(request).settings.namespace
    hooks = _hooks(request)
    rows = await anyio.to_thread.run_sync(lambda: hooks.messages(ns, webhook_id, DEAD, limit))
    return MessageList(messages=[_message(r) for r in rows])


@router.post("/{webhook_id}/replay", status_code=202, response_model=ReplayOut)
async def replay(
    webhook_id: SubscriptionPath, body: ReplayIn, principal: Admin, request: Request
) -> ReplayOut:
    """Send again every kept message of the subscription from ``from_event_id`` on, delivered
    or dead, in their order (same ``webhook-id``s: a receiver that dedupes by id must forget
    them first). Messages are kept ``webhook_retention_seconds`` after they were done."""
    ns = services(request).settings.namespace
    hooks = _hooks(request)
    queued = await anyio.to_thread.run_sync(
        lambda: hooks.replay(ns, webhook_id, body.from_event_id, now_ms())
    )
    return ReplayOut(queued=queued)
