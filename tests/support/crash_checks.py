"""What the crash tests check once the load is over (DESIGN promise 2, rules 5 and 6), for any
stack: a standalone redis-server or a cluster, the flows in any one stock domain.

(a) every acknowledged reservation is kept, in Redis, the ledger and the API's answers;
(b) every acknowledged sale has one ``fulfilled`` movement per line; (c) no movement is
duplicated; (d) ``stocksync audit`` finds no drift; (e) the positions follow, in Redis and in
the ledger, from the final state of every reservation the driver made.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter

from stocksync.ledger.sql_ledger import SqlLedger
from tests.support.crash_load import (
    FLOWS,
    INITIAL_ON_HAND,
    Crash,
    Line,
    Position,
    Settled,
    api_client,
    settle,
)
from tests.support.processes import Stack
from tests.support.serve import stocksync_cli

ACTIVE = frozenset({"held", "confirmed", "ready"})


# -- the invariants, in the order they are checked -----------------------------------------


async def check_invariants(stack: Stack, crash: Crash) -> None:
    assert_the_load_went_on_after_the_crash(crash)
    assert_no_answer_was_unexpected(crash)
    assert_most_reservations_were_acknowledged(crash)
    settled = await settle(stack, crash.flows)
    assert_every_acknowledged_reservation_is_kept(crash, settled)
    await assert_the_api_answers_the_kept_states(stack, crash, settled)
    assert_the_ledger_has_exactly_the_reservations_in_redis(crash, settled)
    assert_every_acknowledged_sale_has_one_fulfilled_movement_per_line(crash, settled)
    assert_no_reservation_line_event_is_recorded_twice(settled)
    assert_every_reservation_has_the_events_of_its_path_once(settled)
    assert_no_movement_is_duplicated(settled)
    assert_redis_positions_follow_from_the_reservations(settled)
    assert_ledger_positions_follow_from_the_reservations(stack, settled)
    assert_the_load_both_sold_and_kept_holds(settled)
    await assert_the_audit_finds_no_drift(stack, len(settled.positions))


def assert_the_load_went_on_after_the_crash(crash: Crash) -> None:
    if crash.victim == "worker":
        # The API does not wait for the ledger worker: the load goes on while it is dead (and
        # may end before it is back); that the restarted worker catches up is checked below.
        assert crash.acks_after_kill > 0, "no operation was acknowledged after the kill"
    else:
        assert crash.acks_after_restart > 0, "no operation was acknowledged after the restart"


def assert_no_answer_was_unexpected(crash: Crash) -> None:
    assert not crash.driver.unexpected, crash.driver.unexpected[:10]


def assert_most_reservations_were_acknowledged(crash: Crash) -> None:
    assert len(crash.acknowledged) > FLOWS // 2, "most reservations should have been acknowledged"


def assert_every_acknowledged_reservation_is_kept(crash: Crash, settled: Settled) -> None:
    """(a) Every acknowledged reservation is in Redis in the acknowledged state (or in the state
    of a call that failed after it, which may have applied), and in the ledger in the same."""
    in_redis, ledger_reservations = settled.in_redis, settled.ledger_reservations
    for t in crash.acknowledged:
        assert t.rid in in_redis, f"acknowledged reservation {t.rid} ({t.acked}) lost in Redis"
        state, lines = in_redis[t.rid]
        allowed = {t.acked, t.unacked} - {None}
        assert state in allowed, f"{t.rid}: acknowledged {t.acked}, Redis says {state}"
        assert lines == sorted(t.lines), t.rid
        assert ledger_reservations.get(t.rid) == (state, lines), (
            f"{t.rid}: Redis {state}, ledger {ledger_reservations.get(t.rid)}"
        )


async def assert_the_api_answers_the_kept_states(
    stack: Stack, crash: Crash, settled: Settled
) -> None:
    """(a, continued) The API answers every acknowledged reservation with the state Redis holds."""
    async with api_client(stack) as api:
        for t in crash.acknowledged:
            r = await api.get(f"/v1/reservations/{t.rid}")
            assert r.status_code == 200, r.text
            assert r.json()["state"] == settled.in_redis[t.rid][0], t.rid


def assert_the_ledger_has_exactly_the_reservations_in_redis(crash: Crash, settled: Settled) -> None:
    """Reservations that were never acknowledged may exist (a call applied, its reply lost),
    but then in both Redis and the ledger, identically; the ledger has nothing else."""
    ours = {t.rid for t in crash.flows}
    ledger_reservations = settled.ledger_reservations
    assert {k: v for k, v in ledger_reservations.items() if k in ours} == settled.in_redis
    assert set(ledger_reservations) <= ours


def movements_by_reservation(settled: Settled) -> dict[tuple[str, str], list[Line]]:
    """(reservation, kind) -> the lines of its movements of that kind."""
    by_reservation: dict[tuple[str, str], list[Line]] = {}
    for mv in settled.movements:
        if mv.reservation_id is not None:
            by_reservation.setdefault((mv.reservation_id, mv.kind), []).append(
                (mv.sku, mv.location_id, int(mv.qty))
            )
    return by_reservation


def assert_every_acknowledged_sale_has_one_fulfilled_movement_per_line(
    crash: Crash, settled: Settled
) -> None:
    """(b) Every acknowledged sale has exactly one `fulfilled` movement per line."""
    by_reservation = movements_by_reservation(settled)
    for t in crash.acknowledged:
        if t.acked == "fulfilled":
            assert sorted(by_reservation.get((t.rid, "fulfilled"), [])) == sorted(t.lines), t.rid


def assert_no_reservation_line_event_is_recorded_twice(settled: Settled) -> None:
    per_line = Counter(
        (mv.reservation_id, mv.kind, mv.sku, mv.location_id)
        for mv in settled.movements
        if mv.reservation_id is not None
    )
    assert [k for k, n in per_line.items() if n > 1] == []


def assert_every_reservation_has_the_events_of_its_path_once(settled: Settled) -> None:
    """Every reservation in a state has the events of the path there, once (held on every one)."""
    by_reservation = movements_by_reservation(settled)
    for rid, (state, lines) in settled.in_redis.items():
        assert sorted(by_reservation.get((rid, "held"), [])) == lines, rid
        if state in ("fulfilled", "released"):
            assert sorted(by_reservation.get((rid, state), [])) == lines, rid


def assert_no_movement_is_duplicated(settled: Settled) -> None:
    """(c) No duplicated movement: event ids are unique, and so is (sku, seq)."""
    movements = settled.movements
    assert [e for e, n in Counter(mv.event_id for mv in movements).items() if n > 1] == []
    assert [k for k, n in Counter((mv.sku, mv.seq) for mv in movements).items() if n > 1] == []


def sold_and_held(settled: Settled) -> tuple[Counter[Position], Counter[Position]]:
    """Units sold and units held at each position, from the final state of every reservation
    the driver made."""
    sold: Counter[Position] = Counter()
    held: Counter[Position] = Counter()
    for state, lines in settled.in_redis.values():
        for sku, loc, qty in lines:
            if state == "fulfilled":
                sold[(sku, loc)] += qty
            elif state in ACTIVE:
                held[(sku, loc)] += qty
    return sold, held


def expected_positions(settled: Settled) -> dict[Position, tuple[int, int]]:
    """(on_hand, reserved) of every position: the initial stock less what was sold, and what
    the active reservations hold."""
    sold, held = sold_and_held(settled)
    return {p: (INITIAL_ON_HAND - sold[p], held[p]) for p in settled.positions}


def assert_redis_positions_follow_from_the_reservations(settled: Settled) -> None:
    """(e) Stock arithmetic, from the final state of every reservation the driver made."""
    assert settled.positions == expected_positions(settled)


def assert_ledger_positions_follow_from_the_reservations(stack: Stack, settled: Settled) -> None:
    ledger_positions = SqlLedger(stack.engine).positions(stack.ledger_namespace)
    assert {p: v[:2] for p, v in ledger_positions.items()} == expected_positions(settled)


def assert_the_load_both_sold_and_kept_holds(settled: Settled) -> None:
    sold, held = sold_and_held(settled)
    assert sum(sold.values()) > 0  # the mix both sold
    assert sum(held.values()) > 0  # and kept holds


async def assert_the_audit_finds_no_drift(stack: Stack, positions: int) -> None:
    """(d) The audit agrees on ``positions`` positions (``stocksync audit`` compares every
    bucket): exit 0, nothing drifting, nothing in flight."""
    audit = await asyncio.to_thread(
        subprocess.run,
        stocksync_cli("audit"),
        env=stack.env,
        cwd=stack.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert f"{positions} position(s) compared" in audit.stdout, audit.stdout
    assert "0 with events not yet in the ledger, 0 drifting" in audit.stdout, audit.stdout
