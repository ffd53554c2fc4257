"""Square's ``inventory.count.updated`` webhook through the real app: signature, apply, replay."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from connectors.framework.state import ConnectorState
from connectors.square.webhook import SIGNATURE_HEADER, sign
from stocksync.api.deps import Services
from stocksync.config import Settings
from tests.support.square_payloads import ago, count_updated_event, inventory_count

ITEM, SQ_LOC, LOC = "W62UWFY35CWMYGVWK6TWJDNI", "C6W5YS5QM06F5", "store-a"
SKU = "TEE-" + uuid.uuid4().hex[:10]
KEY = "square-signature-key"
URL = "https://stocksync.example.com/v1/connectors/square/webhook"
PATH = "/v1/connectors/square/webhook"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    mapping = tmp_path / "square-mapping.toml"
    mapping.write_text(f'[skus]\n"{ITEM}" = "{SKU}"\n[locations]\n"{SQ_LOC}" = "{LOC}"\n')
    config = tmp_path / "connectors.toml"
    config.write_text(
        "[square]\n"
        'access_token = "EAAA-test"\n'
        f'mapping_file = "{mapping}"\n'
        f'signature_key = "{KEY}"\n'
        f'notification_url = "{URL}"\n'
    )
    return settings.model_copy(update={"connectors_config": config})


@pytest.fixture
async def location(client: httpx.AsyncClient) -> str:
    body = {"name": "Store A", "kind": "store", "lat": 52.52, "lon": 13.4, "pickup": True}
    r = await client.put(f"/v1/locations/{LOC}", json=body)
    assert r.status_code in (200, 201), r.text
    return LOC


async def post(anon: httpx.AsyncClient, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return await anon.post(PATH, content=body, headers=headers)


async def on_hand(client: httpx.AsyncClient) -> int | None:
    r = await client.get(f"/v1/stock/{LOC}/{SKU}")
    return int(r.json()["on_hand"]) if r.status_code == 200 else None


async def test_square_webhook_applies_a_signed_count_once(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, location: str
) -> None:
    event = count_updated_event("ev-1", [inventory_count(ITEM, SQ_LOC, "34", ago(seconds=5))])
    body = json.dumps(event).encode()

    first = await post(anon, body, sign(KEY, URL, body))
    again = await post(anon, body, sign(KEY, URL, body))  # Square redelivers

    assert first.status_code == 200, first.text
    assert first.json()["outcomes"] == {"applied": 1}
    assert again.json()["outcomes"] == {"duplicate": 1}
    assert await on_hand(client) == 34


@pytest.mark.parametrize("signature", [None, "", sign("another-key", URL, b"{}")])
async def test_square_webhook_with_a_bad_signature_is_401_and_changes_nothing(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, location: str, signature: str | None
) -> None:
    event = count_updated_event("ev-2", [inventory_count(ITEM, SQ_LOC, "7", ago(seconds=5))])
    body = json.dumps(event).encode()

    r = await post(anon, body, signature)

    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "unauthorized"
    assert await on_hand(client) in (None, 0)


async def test_square_webhook_signed_for_another_url_is_401(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, location: str
) -> None:
    event = count_updated_event("ev-3", [inventory_count(ITEM, SQ_LOC, "7", ago(seconds=5))])
    body = json.dumps(event).encode()
    r = await post(anon, body, sign(KEY, "https://elsewhere.example/hook", body))
    assert r.status_code == 401
    assert await on_hand(client) in (None, 0)


async def test_square_webhook_dead_letters_unmappable_counts_and_answers_200(
    anon: httpx.AsyncClient, client: httpx.AsyncClient, location: str, services: Services
) -> None:
    counts = [
        inventory_count(ITEM, SQ_LOC, "5", ago(seconds=5)),
        inventory_count("UNMAPPED-VARIATION", SQ_LOC, "1", ago(seconds=5)),
        inventory_count(ITEM, SQ_LOC, "2", ago(seconds=5), state="WASTE"),
    ]
    body = json.dumps(count_updated_event("ev-4", counts)).encode()

    r = await post(anon, body, sign(KEY, URL, body))

    assert r.status_code == 200, r.text
    assert r.json()["outcomes"] == {"applied": 1, "dead_letter": 1, "ignored": 1}
    assert await on_hand(client) == 5
    [letter] = ConnectorState(services.engine, "square").dead_letters()
    assert "UNMAPPED-VARIATION" in letter.reason
    assert json.loads(letter.payload)["event_id"] == "ev-4"
