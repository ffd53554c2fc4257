"""GET /metrics: bounded label sets, and a key when the server asks for one."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from stocksync.config import Settings
from tests.support.api import KeyFactory


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_require_key": True})


def series(text: str, metric: str) -> list[str]:
    return re.findall(rf"^{metric}\{{(.*)\}} ", text, flags=re.MULTILINE)


async def test_metrics_labels_stay_bounded_whatever_the_client_sends(
    client: httpx.AsyncClient,
) -> None:
    for method in ("PROPFIND", "MKCOL", "BREW"):
        await client.request(method, "/v1/locations")
    for _ in range(20):
        await client.get(f"/v1/no-such-route/{uuid.uuid4().hex}")
    text = (await client.get("/metrics")).text
    labels = series(text, "stocksync_http_requests_total")
    assert 'method="other",route="/v1/locations",status="405"' in labels
    assert [s for s in labels if "no-such-route" in s] == []
    assert labels.count('method="GET",route="unmatched",status="404"') == 1
    assert {m for s in labels for m in re.findall(r'method="(\w+)"', s)} == {"GET", "other"}


async def test_metrics_need_a_read_key_when_configured(
    anon: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    r = await anon.get("/metrics")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    r = await anon.get("/metrics", headers={"Authorization": "Bearer ssk_nope_nope"})
    assert r.status_code == 401
    r = await anon.get("/metrics", headers={"Authorization": f"Bearer {make_key('reserve')}"})
    assert r.status_code == 403
    for scopes in ("read", "admin"):
        r = await anon.get("/metrics", headers={"Authorization": f"Bearer {make_key(scopes)}"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert "stocksync_http_requests_total" in r.text
