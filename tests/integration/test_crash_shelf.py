"""Crash tests of the stock beyond the shelf: returns and transfers are applied exactly once
across a SIGKILL of the API or of redis-server (DESIGN promise 2, rules 3, 5 and 6).

The stack is the crash tests' own (tests/support/processes.py: redis-server with AOF and
``appendfsync always``, ``stocksync serve``, ``stocksync worker``, a SQLite or PostgreSQL
ledger). A driver ships, receives and cancels transfers, fulfils reservations and returns
them in part, and records unlinked till returns, through HTTP, retrying every failed call
with the same ids and body; after a third of the load one process is killed and restarted.
Once the ledger has caught up, tests/support/crash_shelf_checks.py checks that every
acknowledged operation is in Redis once, in the ledger once, and that the buckets of Redis,
of the ledger's deltas and of the operations agree.
"""

from __future__ import annotations

import pytest

from tests.support.crash_shelf_checks import check_shelf_invariants
from tests.support.crash_shelf_load import shelf_load_with_crash
from tests.support.processes import Stack

pytestmark = pytest.mark.slow


async def test_returns_and_transfers_survive_a_killed_api_exactly_once(stack: Stack) -> None:
    crash = await shelf_load_with_crash(stack, "api")
    assert crash.driver.failed_attempts > 0, "no call failed: the kill missed the load"
    await check_shelf_invariants(stack, crash)


async def test_returns_and_transfers_survive_a_killed_redis_exactly_once(stack: Stack) -> None:
    crash = await shelf_load_with_crash(stack, "redis")
    assert crash.driver.failed_attempts > 0, "no call failed: the kill missed the load"
    await check_shelf_invariants(stack, crash)
