"""Retries with exponential backoff and full jitter, for failures that a later try can fix."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from stocksync.domain.errors import LedgerUnavailable, StockRegressed

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """Network, store or database trouble, a frozen SKU or a vendor's 429/5xx: try again."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRYABLE_STATUS
    return isinstance(
        exc,
        RedisError | OperationalError | LedgerUnavailable | StockRegressed | httpx.TransportError,
    )


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries, waiting a random 0..min(cap, base * 2^n) seconds between them."""

    attempts: int = 6
    base_seconds: float = 0.2
    cap_seconds: float = 30.0


async def with_retries(
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """``call()``, retried while it fails transiently; the last error is re-raised."""

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                on_retry(exc)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(backoff.attempts),
        wait=wait_random_exponential(multiplier=backoff.base_seconds, max=backoff.cap_seconds),
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )

    async def attempt() -> T:
        # tenacity awaits only what it recognises as a coroutine function; a lambda returning
        # a coroutine (as Pipeline.apply passes) would come back un-awaited
        return await call()

    return await retrying(attempt)
