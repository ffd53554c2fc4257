"""stocksync.health: what the checks conclude from what they measured."""

from __future__ import annotations

from stocksync.health import Check, Readiness, ledger_copy_check
from stocksync.store.outbox import Consumer, GroupLag


def test_readiness_is_decided_by_required_checks_only() -> None:
    ready = Readiness(
        {
            "redis": Check("ok", True),
            "database": Check("ok", True),
            "ledger_copy": Check("no_live_consumer", False),
        }
    )
    assert ready.ready
    assert ready.as_json()["checks"] == {"redis": "ok", "database": "ok"}
    assert ready.as_json()["reported"] == {"ledger_copy": "no_live_consumer"}
    down = Readiness({"redis": Check("error: ConnectionError", True, error="Error 111")})
    assert not down.ready
    assert "Error 111" not in str(down.as_json())  # /readyz shows no error messages


def test_ledger_copy_check_counts_consumers_alive_below_the_idle_bound() -> None:
    lag = GroupLag(events=4, oldest_ms=1_000, now_ms=3_500)
    consumers = [Consumer("host-1", 2, 800), Consumer("host-0", 0, 3_600_000)]
    check = ledger_copy_check(consumers, lag, idle_seconds_max=60)
    assert check.state == "ok"
    assert not check.required
    assert check.details["consumers_alive"] == 1
    assert check.details["consumers_idle"] == 1
    assert (check.details["lag_events"], check.details["lag_seconds"]) == (4, 2.5)


def test_ledger_copy_check_without_a_live_consumer_or_a_group() -> None:
    stale = ledger_copy_check([Consumer("host-0", 0, 61_000)], None, idle_seconds_max=60)
    assert stale.state == "no_live_consumer"
    assert ledger_copy_check(None, None, idle_seconds_max=60).state == "absent"
