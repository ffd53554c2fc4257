"""Per-key rate limits: a burst from one key is 429 with Retry-After; other keys go on."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI

from stocksync.api.rate_limit import KeyRateLimiter
from stocksync.config import Settings
from stocksync.domain.errors import RateLimited
from tests.support.api import KeyFactory, as_key

RATE = 5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_per_key_per_second": RATE})


async def test_a_burst_from_one_key_is_429_and_another_key_is_unaffected(
    app: FastAPI, make_key: KeyFactory
) -> None:
    async with as_key(app, make_key("read")) as burst, as_key(app, make_key("read")) as calm:
        replies = await asyncio.gather(*(burst.get("/v1/locations") for _ in range(30)))
        codes = [r.status_code for r in replies]
        assert set(codes) == {200, 429}
        assert codes.count(200) <= 2 * RATE  # a sliding window: at most two windows' worth
        refused = next(r for r in replies if r.status_code == 429)
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["content-type"] == "application/problem+json"
        assert (refused.json()["code"], refused.json()["status"]) == ("rate_limited", 429)
        assert (await calm.get("/v1/locations")).status_code == 200


def test_key_rate_limiter_enforces_each_process_share() -> None:
    assert KeyRateLimiter(1000, processes=4).per_process == 250
    assert KeyRateLimiter(10, processes=3).per_process == 4
    off = KeyRateLimiter(0)
    for _ in range(10_000):
        off.check("k")  # 0: no limit
    limiter = KeyRateLimiter(6, processes=2)
    for _ in range(3):
        limiter.check("k")
    with pytest.raises(RateLimited) as refused:
        limiter.check("k")
    assert refused.value.retry_after_seconds is not None
    assert refused.value.retry_after_seconds >= 1
    limiter.check("another key")
