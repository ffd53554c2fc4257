"""The kinds of outbox events the scripts emit: one name per fact, spelled here only.

The Lua scripts write these strings into the outbox; ``tests/store/test_lua_vocabulary.py``
fails when a script emits a kind that is not listed here.
"""

from __future__ import annotations

from enum import StrEnum

from stocksync.domain.model import State


class EventKind(StrEnum):
    # A reservation entered a state (one event per line; the kind is the state's name).
    HELD = State.HELD.value
    CONFIRMED = State.CONFIRMED.value
    READY = State.READY.value
    FULFILLED = State.FULFILLED.value
    RELEASED = State.RELEASED.value
    EXPIRED = State.EXPIRED.value
    # A reservation changed without changing state.
    EXTENDED = "extended"
    MOVED = "moved"
    AT_RISK = "at_risk"
    # Stock of a position changed, or a change was recorded but not applied.
    COUNTED = "counted"
    COUNT_STALE = "count_stale"
    ADJUSTED = "adjusted"
    ADJUST_STALE = "adjust_stale"
    OVERSELL_RISK = "oversell_risk"
    REBUILT = "rebuilt"
    # A position left its stock domain, or arrived in one (``stocksync domains
    # move-location``): its units out of one domain's ledger and into the other's.
    POSITION_MOVED_OUT = "position_moved_out"
    POSITION_MOVED_IN = "position_moved_in"
    # Not about a SKU.
    LOCATION_UPSERTED = "location_upserted"
    LOCATION_MOVED_OUT = "location_moved_out"  # sealed for a move to another domain ('to')
    CUSTOMER_ERASED = "customer_erased"  # carries the reference until the ledger erased it
    POOL_UPSERTED = "pool_upserted"  # a channel pool created or replaced (its whole config)


# Events of a reservation that change no state: an extension, a move, an at-risk flag.
RESERVATION_NON_STATE_KINDS = frozenset({EventKind.EXTENDED, EventKind.MOVED, EventKind.AT_RISK})
RESERVATION_STATE_KINDS = frozenset(EventKind(state.value) for state in State)
RESERVATION_KINDS = RESERVATION_STATE_KINDS | RESERVATION_NON_STATE_KINDS
# What a reservation's history lists: its states, extensions and moves (a flag is not one).
TRANSITION_KINDS = RESERVATION_KINDS - {EventKind.AT_RISK}
# Physical deltas that the as-of rule adds to a count taken before them.
DELTA_KINDS = frozenset({EventKind.ADJUSTED, EventKind.FULFILLED})
