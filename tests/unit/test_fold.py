"""The ledger fold: a reservation's row from all its events, whatever order they arrive in."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stocksync.ledger.batch_fold import fold_batch
from stocksync.ledger.fold import (
    EPOCH,
    ReservationEvent,
    ms_to_datetime,
    placeholder_row,
    reservation_row,
)

Line = tuple[str, str, int]  # sku, location, qty

A, B = "SKU-A", "SKU-B"
LINES: list[Line] = [(A, "store-a", 2), (B, "store-b", 1)]
MOVED: list[Line] = [(A, "store-c", 2), (B, "store-b", 1)]  # LINES after store-a -> store-c
T0_MS = 1_772_442_000_000  # the hold's creation
TERMINAL_KINDS = ("fulfilled", "released", "expired")


def at(seconds: float) -> datetime:
    return ms_to_datetime(T0_MS + int(seconds * 1000))


def deadline(seconds: int) -> str:
    """An ``exp`` field as the store writes it: milliseconds, ``seconds`` after T0."""
    return str(T0_MS + seconds * 1000)


def lines_of(row: dict[str, Any]) -> list[Line]:
    return [(sku, loc, qty) for sku, loc, qty in json.loads(row["lines"])]


class History:
    """One reservation's events as the store emits them: a transition emits on every line, and
    each SKU's events are numbered (``seq``) in the order they happened."""

    def __init__(self) -> None:
        self.events: list[ReservationEvent] = []
        self.seq: Counter[str] = Counter()

    def emit(self, kind: str, sku: str, loc: str, second: float, qty: int, **extra: str) -> None:
        self.seq[sku] += 1
        event = ReservationEvent(kind, sku, loc, self.seq[sku], at(second), "chat", qty, extra)
        self.events.append(event)

    def on_lines(self, kind: str, lines: list[Line], second: float, /, **extra: str) -> None:
        for sku, loc, qty in lines:
            self.emit(kind, sku, loc, second, qty, **extra)

    def held(self, lines: list[Line] = LINES, cref: str = "crm-1") -> History:
        """The hold, at T0, with a deadline 900 s later; the hold event carries every line."""
        extra = {"exp": deadline(900), "cref": cref, "lines": json.dumps(lines)}
        self.on_lines("held", lines, 0, **extra)
        return self

    def then(
        self, kind: str, second: float, exp: str | None = None, lines: list[Line] = LINES
    ) -> History:
        """A transition or an extension on every line (a terminal one carries no ``exp``)."""
        self.on_lines(kind, lines, second, **({} if exp is None else {"exp": exp}))
        return self

    def flag(self, loc: str, second: float) -> History:
        """A till sale left SKU-A short at ``loc``: the hold is flagged at risk."""
        self.emit("at_risk", A, loc, second, 2)
        return self

    def move_a_to_c(self, second: float, exp: str = deadline(900)) -> History:
        """Re-sourced: SKU-A's units leave store-a for store-c (-2 there, +2 here)."""
        move = {"from": "store-a", "to": "store-c", "exp": exp}
        self.emit("moved", A, "store-a", second, 2, **move)
        self.emit("moved", A, "store-c", second, 2, **move)
        return self


def moved_history(flag_at: float, move_at: float) -> History:
    """Held on two lines, SKU-A's line flagged at ``flag_at`` and moved to store-c at
    ``move_at`` (events in the order they happen), then confirmed with a pickup deadline."""
    h = History().held()
    if flag_at < move_at:
        h.flag("store-a", flag_at).move_a_to_c(move_at)
    else:
        h.move_a_to_c(move_at).flag("store-c", flag_at)
    return h.then("confirmed", 60, deadline(3600), MOVED)


def whole_life() -> History:
    """Every kind: held, extended, flagged, moved, confirmed and extended in one millisecond."""
    h = History().held().then("extended", 5, deadline(1200))
    h.flag("store-a", 8).move_a_to_c(10, deadline(1200))
    h.then("confirmed", 20, deadline(3600), MOVED)
    return h.then("extended", 20, deadline(7200), MOVED)


def fulfilled_life() -> History:
    return whole_life().then("ready", 30, deadline(7200), MOVED).then("fulfilled", 40, None, MOVED)


HISTORIES = {"active": whole_life, "fulfilled": fulfilled_life}


def test_reservation_row_folds_a_whole_history() -> None:
    assert reservation_row(whole_life().events) == {
        "channel": "chat",
        "state": "confirmed",
        "lines": json.dumps([list(line) for line in MOVED]),
        "customer_ref": "crm-1",
        "created_at": at(0),
        "updated_at": at(20),
        "expires_at": ms_to_datetime(int(deadline(7200))),
        "at_risk": False,
    }


@pytest.mark.parametrize("history", sorted(HISTORIES))
@given(data=st.data())
def test_reservation_row_is_the_same_in_any_arrival_order(
    history: str, data: st.DataObject
) -> None:
    events = HISTORIES[history]().events
    arrived = data.draw(st.permutations(events))
    assert reservation_row(arrived) == reservation_row(events)


@pytest.mark.parametrize("last", TERMINAL_KINDS)
@given(data=st.data())
def test_reservation_row_state_only_moves_forward(last: str, data: st.DataObject) -> None:
    """Whichever of the path's transitions have arrived, in whichever order, the state is the
    furthest of them: an earlier state arriving late never takes the row back."""
    path = ("held", "confirmed", "ready", last)
    history = History().held().then("confirmed", 1, "").then("ready", 2, "").then(last, 3)
    seen = data.draw(st.sets(st.sampled_from(path), min_size=1))
    arrived = data.draw(st.permutations([e for e in history.events if e.kind in seen]))
    assert reservation_row(arrived)["state"] == max(seen, key=path.index)


@pytest.mark.parametrize("last", TERMINAL_KINDS)
def test_reservation_row_terminal_state_clears_expires_at(last: str) -> None:
    h = History().held().then("extended", 5, deadline(1200)).then(last, 10)
    row = reservation_row(h.events)
    assert (row["state"], row["expires_at"]) == (last, None)


@pytest.mark.parametrize("last", TERMINAL_KINDS)
def test_reservation_row_terminal_state_clears_expires_at_before_its_other_lines_arrive(
    last: str,
) -> None:
    """Only SKU-B's terminal event is in yet; SKU-A's newest is still the extension (with a
    deadline), and SKU-A is the line the deadline is read from."""
    h = History().held().then("extended", 5, deadline(1200)).then(last, 10)
    arrived = [e for e in h.events if not (e.kind == last and e.sku == A)]
    row = reservation_row(arrived)
    assert (row["state"], row["expires_at"]) == (last, None)


def test_reservation_row_expires_at_is_the_newest_transitions_deadline_by_seq() -> None:
    """A confirmation and an extension in the same millisecond: ``seq`` says which came last."""
    h = History().held().then("confirmed", 20, deadline(3600)).then("extended", 20, deadline(7200))
    assert reservation_row(h.events)["expires_at"] == ms_to_datetime(int(deadline(7200)))
    h = History().held().then("extended", 20, deadline(7200)).then("confirmed", 20, deadline(3600))
    assert reservation_row(h.events)["expires_at"] == ms_to_datetime(int(deadline(3600)))


def test_reservation_row_confirmation_without_a_pickup_deadline_has_none() -> None:
    h = History().held().then("confirmed", 20, "")
    assert reservation_row(h.events)["expires_at"] is None


def test_reservation_row_applies_moves_to_the_hold_lines() -> None:
    assert lines_of(reservation_row(moved_history(flag_at=5, move_at=10).events)) == MOVED


@given(data=st.data())
def test_reservation_row_applies_moves_in_any_order(data: st.DataObject) -> None:
    arrived = data.draw(st.permutations(moved_history(flag_at=5, move_at=10).events))
    assert lines_of(reservation_row(arrived)) == MOVED


def test_reservation_row_move_onto_a_line_the_hold_has_adds_up() -> None:
    h = History().held([(A, "store-a", 2), (A, "store-c", 1)], cref="").move_a_to_c(10)
    row = reservation_row(h.events)
    assert lines_of(row) == [(A, "store-c", 3)]
    assert row["customer_ref"] is None


def test_reservation_row_without_the_hold_event_shows_the_lines_seen_so_far() -> None:
    h = History().held().then("confirmed", 20, deadline(3600))
    row = reservation_row([e for e in h.events if e.kind != "held"])
    assert (row["state"], row["customer_ref"]) == ("confirmed", None)
    assert lines_of(row) == LINES


def test_reservation_row_at_risk_when_flagged_after_the_last_move() -> None:
    assert reservation_row(moved_history(flag_at=15, move_at=10).events)["at_risk"]


def test_reservation_row_a_move_after_the_flag_clears_it() -> None:
    assert not reservation_row(moved_history(flag_at=5, move_at=10).events)["at_risk"]


def test_reservation_row_a_flag_does_not_change_updated_at() -> None:
    """Redis does not touch ``updated_at`` when it flags a hold: neither does the fold."""
    h = History().held().then("extended", 5, deadline(1200)).flag("store-a", 8)
    row = reservation_row(h.events)
    assert row["at_risk"]
    assert row["updated_at"] == at(5)


def test_reservation_row_only_a_flag_known_gives_the_placeholder() -> None:
    assert reservation_row(History().flag("store-a", 8).events) == placeholder_row(True)


def test_placeholder_row_is_an_empty_hold_at_the_epoch() -> None:
    assert placeholder_row(False) == {
        "channel": "",
        "state": "held",
        "lines": "[]",
        "customer_ref": None,
        "created_at": EPOCH,
        "updated_at": EPOCH,
        "expires_at": None,
        "at_risk": False,
    }


def test_reservation_row_fills_the_placeholder_once_the_hold_arrives() -> None:
    row = reservation_row(History().held().flag("store-a", 8).events)
    assert (row["channel"], row["state"], row["at_risk"]) == ("chat", "held", True)
    assert row["created_at"] == row["updated_at"] == at(0)
    assert lines_of(row) == LINES


@given(data=st.data())
def test_reservation_row_created_and_updated_are_the_first_and_last_event_times(
    data: st.DataObject,
) -> None:
    row = reservation_row(data.draw(st.permutations(fulfilled_life().events)))
    assert (row["created_at"], row["updated_at"]) == (at(0), at(40))


def recorded_summary(events: list[ReservationEvent]) -> dict[str, tuple[int, int | None]]:
    """What the ledger's summary reports for ``events``: per SKU, the events and the highest
    non-flag seq."""
    out: dict[str, tuple[int, int | None]] = {}
    for e in events:
        count, top = out.get(e.sku, (0, None))
        if e.kind != "at_risk":
            top = e.seq if top is None else max(top, e.seq)
        out[e.sku] = (count + 1, top)
    return out


@pytest.mark.parametrize("history", sorted(HISTORIES))
@given(data=st.data())
def test_fold_batch_in_any_batches_and_order_gives_the_row_of_all_events(
    history: str, data: st.DataObject
) -> None:
    """The ledger copy folds batch by batch from the row it has (re-delivered events
    included); the result is the row of every event, whatever the split and the order."""
    events = HISTORIES[history]().events
    arrived = data.draw(st.permutations(events))
    arrived += data.draw(st.lists(st.sampled_from(events), max_size=4))  # re-delivered
    cuts = sorted(data.draw(st.sets(st.integers(1, len(arrived) - 1), max_size=6)))
    row = placeholder_row(False)
    recorded: list[ReservationEvent] = []
    for start, end in zip([0, *cuts], [*cuts, len(arrived)], strict=True):
        # A batch writes each event once (an event is identified by its SKU and seq).
        batch = list({(e.sku, e.seq): e for e in arrived[start:end]}.values())
        recorded += [e for e in batch if (e.sku, e.seq) not in {(r.sku, r.seq) for r in recorded}]
        merged = fold_batch(row, batch, recorded_summary(recorded))
        row = merged if merged is not None else reservation_row(recorded)
    assert row == reservation_row(events)


def test_fold_batch_merges_a_later_transition_without_every_event() -> None:
    """The common case: a confirmation arriving after its hold is merged into the row."""
    h = History().held().then("confirmed", 20, deadline(3600))
    held = [e for e in h.events if e.kind == "held"]
    confirmed = [e for e in h.events if e.kind == "confirmed"]
    row = reservation_row(held)
    merged = fold_batch(row, confirmed, recorded_summary(h.events))
    assert merged == reservation_row(h.events)
