"""``inventory.count.updated`` notifications: verify Square's signature, apply each count.

Square signs ``notification_url + raw body`` with HMAC-SHA256 under the subscription's
signature key and sends it base64-encoded in ``x-square-hmacsha256-signature``.

Answers: 401 for a missing or bad signature (nothing applied); 503 when the engine fails
transiently, so Square delivers again (every count is idempotent by its event id); 200
otherwise, also for counts that cannot be mapped: they are dead-lettered, and a retry by
Square could not map them either. A notification without ``data.object`` (Square leaves it out
when the object was deleted) has nothing to apply and is counted as ignored; an ``event_id``
longer than :data:`~connectors.square.shapes.MAX_EVENT_ID_CHARS` is dead-lettered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.framework.commands import Unmappable
from connectors.framework.config import IdMap
from connectors.framework.pipeline import DeadLettered, Pipeline
from connectors.framework.retry import is_transient
from connectors.square.mapping import map_count
from connectors.square.shapes import WebhookEvent
from stocksync.api.problems import problem
from stocksync.domain.errors import Unauthorized

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "x-square-hmacsha256-signature"
COUNT_UPDATED = "inventory.count.updated"


def sign(signature_key: str, notification_url: str, body: bytes) -> str:
    """The signature Square sends for ``body`` posted to ``notification_url``."""
    digest = hmac.new(
        signature_key.encode(), notification_url.encode() + body, hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def verify(signature_key: str, notification_url: str, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is Square's for this body and URL (constant-time compare)."""
    if not signature:
        return False
    expected = sign(signature_key, notification_url, body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


async def receive(
    request: Request,
    pipeline: Pipeline,
    ids: IdMap,
    signature_key: str | None,
    notification_url: str | None,
) -> Response:
    """Verify and apply one notification (see the module docstring for the answers)."""
    if not signature_key or not notification_url:
        raise Unauthorized(
            "square webhooks are not enabled: set signature_key and notification_url"
        )
    body = await request.body()
    if not verify(signature_key, notification_url, body, request.headers.get(SIGNATURE_HEADER)):
        raise Unauthorized(f"missing or invalid {SIGNATURE_HEADER}; nothing was applied")
    text = body.decode("utf-8", errors="replace")
    try:
        event = WebhookEvent.model_validate_json(body)
    except ValidationError as exc:
        letter = await pipeline.dead_letter("webhook", f"not a Square event: {exc}", text)
        return JSONResponse({"dead_letter": letter}, status_code=200)
    if event.type != COUNT_UPDATED:
        pipeline.metrics.outcome(pipeline.name, "ignored")
        return JSONResponse({"ignored": event.type}, status_code=200)
    counts = (event.data.object or {}).get("inventory_counts")
    if counts is None:  # no object (Square: absent when the object was deleted): nothing to count
        pipeline.metrics.outcome(pipeline.name, "ignored")
        return JSONResponse({"event_id": event.event_id, "outcomes": {}}, status_code=200)
    if not isinstance(counts, list):
        letter = await pipeline.dead_letter(
            "webhook", "data.object.inventory_counts is not a list", text
        )
        return JSONResponse({"dead_letter": letter}, status_code=200)
    outcomes: dict[str, int] = {}
    for raw in counts:
        outcome = await _apply_count(pipeline, ids, event.event_id, raw)
        if outcome is None:
            return _retry_later(event.event_id)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return JSONResponse({"event_id": event.event_id, "outcomes": outcomes}, status_code=200)


async def _apply_count(pipeline: Pipeline, ids: IdMap, event_id: str, raw: Any) -> str | None:
    """The outcome of one count; None when the engine failed transiently."""
    text = json.dumps({"event_id": event_id, "inventory_count": raw}, sort_keys=True)
    try:
        if not isinstance(raw, dict):
            raise Unmappable("an inventory_counts entry is not an object")
        command = map_count(raw, ids, event_id)
    except Unmappable as exc:
        await pipeline.dead_letter(COUNT_UPDATED, str(exc), text)
        return "dead_letter"
    if command is None:
        pipeline.metrics.outcome(pipeline.name, "ignored")
        return "ignored"
    try:
        [applied] = await pipeline.apply(COUNT_UPDATED, text, [command])
    except DeadLettered:
        return "dead_letter"
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("square webhook %s: engine unavailable (%s); asking for a retry", event_id, exc)
        return None
    return applied.value


def _retry_later(event_id: str) -> Response:
    response = problem(
        503,
        "engine_unavailable",
        "Engine unavailable",
        f"event {event_id} was not fully applied; deliver it again (it is idempotent)",
    )
    response.headers["Retry-After"] = "5"
    return response
