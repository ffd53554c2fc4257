"""The webhook receiver on its own: Square's documented notification, its ids, a transient engine
failure that asks Square to deliver again."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from redis.asyncio import Redis
from starlette.requests import Request

from connectors.framework.config import IdMap
from connectors.framework.pipeline import Pipeline
from connectors.framework.state import ConnectorState
from connectors.square.connector import WEBHOOK_BACKOFF
from connectors.square.shapes import MAX_EVENT_ID_CHARS
from connectors.square.webhook import SIGNATURE_HEADER, receive, sign
from stocksync.domain.model import Location
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


async def deliver(ctx: EngineContext, event: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(event).encode()
    response = await receive(
        request(body, sign(KEY, URL, body)), Pipeline("square", ctx, WEBHOOK_BACKOFF), IDS, KEY, URL
    )
    assert response.status_code == 200
    answer: dict[str, Any] = json.loads(bytes(response.body))
    return answer


async def stocked_store(store: RedisStockStore) -> None:
    await store.upsert_location(Location("store-a", "Store A", "store", 52.52, 13.40, True, True))


def test_count_updated_event_is_shaped_like_squares_documented_example() -> None:
    event = count_updated_event("df5f3813-a913-45a1-94e9-fdc3f7d5e3b6", [])
    assert set(event) == {"merchant_id", "type", "event_id", "created_at", "data"}
    assert event["type"] == "inventory.count.updated"
    assert set(event["data"]) == {"type", "id", "object"}
    assert event["data"]["type"] == "inventory_counts"


async def test_receive_applies_an_event_id_of_any_length_square_may_send(
    ctx: EngineContext, store: RedisStockStore
) -> None:
    """Square sets no length on ``event_id``; the connector's own bound is generous."""
    await stocked_store(store)
    counts = [inventory_count(ITEM, SQ_LOC, "3", ago(seconds=2))]
    long_id = "evt-" + "9" * 600
    first = await deliver(ctx, count_updated_event(long_id, counts))
    again = await deliver(ctx, count_updated_event(long_id, counts))
    assert first["outcomes"] == {"applied": 1}
    assert again["outcomes"] == {"duplicate": 1}
    assert (await store.position("TEE-RED-M", "store-a")).on_hand == 3


async def test_receive_dead_letters_an_event_id_beyond_the_bound_and_applies_nothing(
    ctx: EngineContext, store: RedisStockStore
) -> None:
    await stocked_store(store)
    event = count_updated_event(
        "e" * (MAX_EVENT_ID_CHARS + 1), [inventory_count(ITEM, SQ_LOC, "3", ago(seconds=2))]
    )
    answer = await deliver(ctx, event)
    [letter] = ConnectorState(ctx.engine, "square").dead_letters()
    assert answer == {"dead_letter": letter.id}
    assert "event_id" in letter.reason
    assert (await store.position("TEE-RED-M", "store-a")).on_hand == 0


@pytest.mark.parametrize("data", [{"type": "inventory_counts", "id": "x"}, {"object": None}])
async def test_receive_ignores_a_notification_without_its_object(
    ctx: EngineContext, data: dict[str, Any]
) -> None:
    """Square: ``data.object`` "Is absent if affected object was deleted"."""
    event = {**count_updated_event("ev-10", []), "data": data}
    answer = await deliver(ctx, event)
    assert answer == {"event_id": "ev-10", "outcomes": {}}
    assert ConnectorState(ctx.engine, "square").dead_letters() == []
