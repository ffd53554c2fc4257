"""``with_retries`` with the callables the pipeline passes it (a lambda returning a coroutine)."""

from __future__ import annotations

import httpx

from connectors.framework.retry import Backoff, with_retries


async def test_with_retries_awaits_a_lambda_returning_a_coroutine() -> None:
    calls: list[int] = []

    async def flaky(n: int) -> int:
        calls.append(n)
        if len(calls) < 2:
            raise httpx.ConnectError("refused")
        return n * 2

    result = await with_retries(lambda: flaky(21), Backoff(3, 0.001, 0.002))
    assert result == 42
    assert calls == [21, 21]
