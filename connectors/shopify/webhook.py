"""Shopify webhook deliveries: signature check and the answer Shopify should get.

Shopify retries any delivery not answered 2xx (for hours) and removes a subscription that keeps
failing, so only what a retry can fix is answered with an error: a transient engine failure is
a 503 (retry later). A payload that cannot be mapped, or an order the engine refuses for good
(e.g. the web shop oversold: no stock to reserve), is written to the dead-letter table with the
reason and answered 200 — a retry would fail the same way, and the letter keeps it for an
operator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"


def signature(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, raw body)), as Shopify computes it."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time comparison of the delivery's signature header with ours."""
    if not header:
        return False
    return hmac.compare_digest(signature(secret, body).encode(), header.strip().encode())
