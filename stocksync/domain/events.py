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
    # Stock beyond the shelf (DESIGN "Vocabulary"). Each is about one position and carries the
    # deltas of the buckets it changed (d_on_hand, d_damaged, d_quality_control, d_in_transit)
    # and their values after it (on_hand, reserved, damaged, quality_control, in_transit).
    STOCK_MOVED = "stock_moved"  # between on_hand, damaged, quality_control, or written off
    RETURNED = "returned"  # a return's line: units back at a location ('ret', 'disp')
    TRANSFER_SHIPPED = "transfer_shipped"  # at the source: -on_hand; at the target: +in_transit
    TRANSFER_RECEIVED = "transfer_received"  # at the target: -in_transit, +on_hand (received)
    TRANSFER_SHORTFALL = "transfer_shortfall"  # at the target: units shipped, not received
    TRANSFER_CANCELLED = "transfer_cancelled"  # target: -in_transit; source: +on_hand
    # Expected supply at a position (no bucket changes; 'supply', 'qty', 'exp').
    INCOMING_SET = "incoming_set"
    INCOMING_REMOVED = "incoming_removed"
    INCOMING_CONSUMED = "incoming_consumed"  # a receipt that named the supply_id


# Events of a reservation that change no state: an extension, a move, an at-risk flag.
RESERVATION_NON_STATE_KINDS = frozenset({EventKind.EXTENDED, EventKind.MOVED, EventKind.AT_RISK})
RESERVATION_STATE_KINDS = frozenset(EventKind(state.value) for state in State)
RESERVATION_KINDS = RESERVATION_STATE_KINDS | RESERVATION_NON_STATE_KINDS
# What a reservation's history lists: its states, extensions and moves (a flag is not one).
TRANSITION_KINDS = RESERVATION_KINDS - {EventKind.AT_RISK}
# Events that change a position's buckets beyond the shelf (or on_hand by moving units between
# buckets and locations): the ledger, the audit and the rebuild sum their bucket deltas.
BUCKET_KINDS = frozenset(
    {
        EventKind.STOCK_MOVED,
        EventKind.RETURNED,
        EventKind.TRANSFER_SHIPPED,
        EventKind.TRANSFER_RECEIVED,
        EventKind.TRANSFER_CANCELLED,
    }
)
SUPPLY_KINDS = frozenset(
    {EventKind.INCOMING_SET, EventKind.INCOMING_REMOVED, EventKind.INCOMING_CONSUMED}
)
# Physical deltas that the as-of rule adds to a count taken before them: their d_on_hand (a
# bucket event's too: a unit returned to the shelf, or found damaged, after a count was taken
# is not in that count). Every script that changes on_hand records it (record_delta).
DELTA_KINDS = frozenset({EventKind.ADJUSTED, EventKind.FULFILLED}) | BUCKET_KINDS
