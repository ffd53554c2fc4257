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


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_key_rate_limiter_slides_over_the_previous_second() -> None:
    clock = FakeClock(100.0)
    limiter = KeyRateLimiter(4, clock=clock)
    for _ in range(4):
        limiter.check("k")
    with pytest.raises(RateLimited):
        limiter.check("k")  # the fifth in the same second
    clock.now = 101.5  # half of second 100 still counts: 4 x 0.5 = 2 of 4 used
    limiter.check("k")
    limiter.check("k")
    with pytest.raises(RateLimited) as refused:
        limiter.check("k")
    assert refused.value.retry_after_seconds == 1
    clock.now = 103.0  # two quiet seconds: a fresh budget
    for _ in range(4):
        limiter.check("k")


def test_key_rate_limiter_forgets_idle_keys() -> None:
    clock = FakeClock(100.0)
    limiter = KeyRateLimiter(10, clock=clock)
    for key in ("a", "b", "c"):
        limiter.check(key)
    assert limiter.tracked_keys == 3
    clock.now = 102.2
    limiter.check("a")
    assert limiter.tracked_keys == 1  # b and c idle for two windows: no longer held
