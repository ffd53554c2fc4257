"""The webhook subscription API: created with its secret once, listed and read without it,
deleted; SSRF targets refused by default; bounds; replay of an unknown message."""

from __future__ import annotations

import httpx
import pytest

from stocksync.config import Settings
from tests.support.api import KeyFactory

HOOK = {"url": "https://93.184.216.34/hooks", "events": ["availability.changed"]}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_max_subscriptions": 2})


async def test_create_shows_the_secret_once_then_list_get_delete(
    client: httpx.AsyncClient,
) -> None:
    body = {**HOOK, "events": ["stock.out", "reservation.held"], "pool": "web-berlin"}
    created = await client.post("/v1/webhooks", json=body)
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_")
    assert hook["events"] == ["reservation.held", "stock.out"]
    listed = (await client.get("/v1/webhooks")).json()["webhooks"]
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]
    got = (await client.get(f"/v1/webhooks/{hook['id']}")).json()
    assert got["pool"] == "web-berlin"
    assert "secret" not in got
    assert (await client.delete(f"/v1/webhooks/{hook['id']}")).status_code == 204
    assert (await client.get(f"/v1/webhooks/{hook['id']}")).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.7/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://localhost:9000/hook",
        "ftp://93.184.216.34/hook",
    ],
)
async def test_internal_and_non_http_targets_are_refused(
    client: httpx.AsyncClient, url: str
) -> None:
    r = await client.post("/v1/webhooks", json={**HOOK, "url": url})
    assert r.status_code == 422
    assert r.json()["code"] in ("webhook_target_refused", "validation_error")
    assert (await client.get("/v1/webhooks")).json()["webhooks"] == []


async def test_bounds_unknown_events_and_admin_only(
    client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    r = await client.post("/v1/webhooks", json={**HOOK, "events": ["stock.teleported"]})
    assert r.status_code == 422
    for _ in range(2):
        assert (await client.post("/v1/webhooks", json=HOOK)).status_code == 201
    over = await client.post("/v1/webhooks", json=HOOK)
    assert over.status_code == 409
    assert over.json()["code"] == "webhook_limit_reached"
    reader = {"Authorization": f"Bearer {make_key('read')}"}
    assert (await client.get("/v1/webhooks", headers=reader)).status_code == 403


async def test_replay_from_an_unknown_message_is_404(client: httpx.AsyncClient) -> None:
    hook = (await client.post("/v1/webhooks", json=HOOK)).json()
    r = await client.post(
        f"/v1/webhooks/{hook['id']}/replay", json={"from_event_id": "msg_" + "0" * 40}
    )
    assert r.status_code == 404
    dead = await client.get(f"/v1/webhooks/{hook['id']}/dead-letters")
    assert dead.json() == {"messages": []}
