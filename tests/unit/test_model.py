"""Pure domain: the transition table, line normalisation, fingerprints."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stocksync.domain.model import (
    ACTIVE,
    TERMINAL,
    Action,
    Line,
    Position,
    State,
    normalize_lines,
    reservation_fingerprint,
    transition_outcome,
)


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_transition_outcome_terminal_states_only_repeat(state: State) -> None:
    outcomes = {action: transition_outcome(state, action) for action in Action}
    assert {a for a, o in outcomes.items() if o is not None} == (
        {Action.FULFILL}
        if state is State.FULFILLED
        else {Action.RELEASE}
        if state is State.RELEASED
        else set()
    )


def test_transition_outcome_follows_the_design() -> None:
    assert transition_outcome(State.HELD, Action.CONFIRM) is State.CONFIRMED
    assert transition_outcome(State.CONFIRMED, Action.READY) is State.READY
    assert transition_outcome(State.HELD, Action.READY) is None
    assert transition_outcome(State.READY, Action.CONFIRM) is None
    for state in ACTIVE:
        assert transition_outcome(state, Action.FULFILL) is State.FULFILLED
        assert transition_outcome(state, Action.RELEASE) is State.RELEASED
        assert transition_outcome(state, Action.EXTEND) is state
    assert transition_outcome(State.EXPIRED, Action.EXTEND) is None


def test_normalize_lines_sums_same_position_and_sorts() -> None:
    lines = [Line("B", "s1", 1), Line("A", "s2", 2), Line("B", "s1", 3)]
    assert normalize_lines(lines) == [Line("A", "s2", 2), Line("B", "s1", 4)]


@given(st.lists(st.tuples(st.sampled_from("ABC"), st.sampled_from("xy"), st.integers(1, 9))))
def test_normalize_lines_keeps_totals_and_order_independence(raw: list) -> None:
    lines = [Line(*t) for t in raw]
    normalized = normalize_lines(lines)
    assert sum(ln.qty for ln in normalized) == sum(ln.qty for ln in lines)
    assert normalized == normalize_lines(list(reversed(lines)))
    assert len({(ln.sku, ln.location_id) for ln in normalized}) == len(normalized)


def test_reservation_fingerprint_tells_bodies_apart() -> None:
    lines = [Line("A", "s", 1)]
    base = reservation_fingerprint("web", lines, 60, None)
    assert base == reservation_fingerprint("web", lines, 60, None)
    assert base != reservation_fingerprint("web", [Line("A", "s", 2)], 60, None)
    assert base != reservation_fingerprint("app", lines, 60, None)
    assert base != reservation_fingerprint("web", lines, 61, None)
    assert base != reservation_fingerprint("web", lines, 60, "crm-1")


def test_position_available_is_clamped_but_raw_is_not() -> None:
    position = Position("A", "s", on_hand=1, reserved=2, safety_stock=1)
    assert position.available_raw == -2
    assert position.available == 0
