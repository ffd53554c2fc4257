"""Which hold a till sale collects: the hold code the cashier put on the sale's Square order.
Pure: no I/O.

A sale rung up on Square POS carries nothing stocksync set: its inventory adjustment's
``reference_id`` is "An optional ID provided by the application" that made the adjustment
(https://developer.squareup.com/reference/square/objects/InventoryAdjustment). What it does
carry is ``transaction_id``, "The Square-generated ID of the Transaction that caused the
adjustment"; Square documents a Point of Sale transaction id as the id of its order ("the
order ID is the transaction ID", https://developer.squareup.com/docs/pos-api/payments-integration;
the InventoryAdjustment reference itself does not say so). That order is read with
BatchRetrieveOrders, and the hold code is looked for in what a cashier can write on it: a line
item's ``note`` or the order's ``reference_id``.

A hold code is 7 characters of an alphabet without look-alikes, shown as ``K7M-Q2PX``
(:mod:`stocksync.domain.codes`). A field that is only a code is read with or without its dash
(a scanned or typed code); inside other text only the dashed form counts, so that an ordinary
seven-letter word is never taken for one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from connectors.square.shapes import Order
from stocksync.domain.codes import normalize_hold_code

DASHED_CODE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{3}-[A-Za-z0-9]{4}(?![A-Za-z0-9])")
MAX_TEXT_CHARS = 2_000  # Square's bound on a line item note; reference_id is at most 40
MAX_CODES_PER_SALE = 4  # candidate codes looked up for one sale (each is a Redis read)


def codes_in(text: str | None) -> list[str]:
    """The hold codes written in one field, in their stored form, first seen first."""
    if not text:
        return []
    text = text[:MAX_TEXT_CHARS]
    whole = normalize_hold_code(text)
    if whole is not None:
        return [whole]
    return _unique(normalize_hold_code(found) for found in DASHED_CODE.findall(text))


def hold_codes(order: Order, catalog_object_id: str) -> list[str]:
    """The codes that may name the hold a sale of ``catalog_object_id`` collects, most specific
    first: the notes of the order's lines of that item, the order's ``reference_id``, then the
    notes of its other lines (a hold of several items, its code written once)."""
    lines = order.line_items or []
    own = [line.note for line in lines if line.catalog_object_id == catalog_object_id]
    others = [line.note for line in lines if line.catalog_object_id != catalog_object_id]
    fields = [*own, order.reference_id, *others]
    return _unique(code for text in fields for code in codes_in(text))[:MAX_CODES_PER_SALE]


def _unique(codes: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(code for code in codes if code is not None))
