"""The webhook receiver on its own: a transient engine failure asks Square to deliver again."""

from __future__ import annotations

import json
from dataclasses import replace

from redis.asyncio import Redis
from starlette.requests import Request

from connectors.framework.config import IdMap
from connectors.framework.pipeline import Pipeline
from connectors.framework.state import ConnectorState
from connectors.square.connector import WEBHOOK_BACKOFF
from connectors.square.webhook import SIGNATURE_HEADER, receive, sign
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore
from tests.support.ports import free_port
from tests.support.square_payloads import ago, count_updated_event, inventory_count

ITEM, SQ_LOC = "W62UWFY35CWMYGVWK6TWJDNI", "C6W5YS5QM06F5"
IDS = IdMap(skus={ITEM: "TEE-RED-M"}, locations={SQ_LOC: "store-a"})
URL, KEY = "https://stocksync.example.com/v1/connectors/square/webhook", "k"


def request(body: bytes, signature: str) -> Request:
    async def receive_body() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    headers = [(SIGNATURE_HEADER.encode(), signature.encode())]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    return Request(scope, receive_body)


async def test_receive_answers_503_when_the_engine_is_unreachable(ctx: EngineContext) -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}", decode_responses=True)
    broken = replace(ctx, store=RedisStockStore(dead, ctx.settings))
    event = count_updated_event("ev-9", [inventory_count(ITEM, SQ_LOC, "3", ago(seconds=2))])
    body = json.dumps(event).encode()

    response = await receive(
        request(body, sign(KEY, URL, body)),
        Pipeline("square", broken, WEBHOOK_BACKOFF),
        IDS,
        KEY,
        URL,
    )
    await dead.aclose()

    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert json.loads(bytes(response.body))["code"] == "engine_unavailable"
    assert ConnectorState(ctx.engine, "square").dead_letters() == []  # Square will retry it
