"""What a rebuild takes from the ledger, for ledgers that hold only part of a SKU's story."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.recovery.rebuild import ledger_payload
from stocksync.store.outbox import decode_event


def test_ledger_payload_leaves_out_a_location_no_movement_gives_numbers_for(
    engine: Engine,
) -> None:
    """Only an at-risk flag reached the ledger for store-b (it carries no on_hand): the
    rebuild has nothing to restore there, and must not fail on it (it raised IndexError)."""
    events = [
        decode_event(
            "rb",
            "1-0",
            {"kind": "counted", "sku": "S1", "loc": "store-a", "seq": "1", "at": "1000"}
            | {"count": "4", "on_hand": "4", "reserved": "0", "d_on_hand": "4", "as_of": "900"},
        ),
        decode_event(
            "rb",
            "2-0",
            {"kind": "at_risk", "sku": "S1", "loc": "store-b", "seq": "2", "at": "2000"}
            | {"res": "r-1", "ch": "web", "qty": "1", "d_on_hand": "0", "d_reserved": "0"},
        ),
    ]
    SqlLedger(engine).record(events)
    with Session(engine) as session:
        payload = ledger_payload(session, "rb", "S1")
    assert payload.seq == 2
    assert [p[:3] for p in payload.positions] == [["store-a", 4, 0]]
