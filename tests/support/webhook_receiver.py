"""A webhook receiver for tests (an ASGI app served on loopback) and a Standard Webhooks
verifier written from the specification, independent of stocksync's signer.

Spec (standardwebhooks.com): the signed content is ``{webhook-id}.{webhook-timestamp}.{body}``;
the key is the base64 decoding of the secret after its ``whsec_`` prefix; the signature is
base64 of HMAC-SHA256; ``webhook-signature`` holds space-separated ``v1,<signature>`` entries,
any of which may match.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.split("_", 1)[1])
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    content = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for entry in headers["webhook-signature"].split(" "):
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return True
    return False


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    verified: bool


# A behaviour per request number (0-based): "ok", "fail" (HTTP 500) or "hang" (never answers
# until the client gives up).
Behaviour = Callable[[int], str]


@dataclass
class Receiver:
    secret: str = ""
    behaviour: Behaviour = field(default=lambda _: "ok")
    requests: int = 0
    accepted: list[Received] = field(default_factory=list)
    refused: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        n = self.requests
        self.requests += 1
        what = self.behaviour(n)
        if what == "hang":  # no answer: the client times out and closes the connection
            while (await receive())["type"] != "http.disconnect":
                pass
            self.refused += 1
            return
        status = 500 if what == "fail" else 204
        if status == 204:
            ok = bool(self.secret) and verify(self.secret, headers, body)
            self.accepted.append(Received(headers["webhook-id"], json.loads(body), ok))
        else:
            self.refused += 1
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def unique(self) -> list[Received]:
        """Accepted messages, each webhook-id once (at-least-once delivery may repeat one)."""
        seen: set[str] = set()
        out = []
        for r in self.accepted:
            if r.webhook_id not in seen:
                seen.add(r.webhook_id)
                out.append(r)
        return out
