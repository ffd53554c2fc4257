"""What the shelf crash tests check once the load is over (DESIGN promise 2, rules 3, 5, 6):

(a) every acknowledged transfer step and return is kept in Redis, as acknowledged (or in the
    state of a later call that got no answer, which may have applied), and the API answers it;
(b) every return in Redis is in the ledger exactly once: one ``returned`` movement per line;
    every transfer has exactly one shipped / received (+ shortfall) / cancelled set; nothing
    else is there (no operation that Redis does not have, no movement twice);
(c) Redis's buckets are what the operations it holds imply, from the initial counts;
(d) the ledger's Σ of each bucket's deltas per position equals Redis, and the audit agrees.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tests.support.crash_checks import assert_the_audit_finds_no_drift
from tests.support.crash_load import INITIAL_ON_HAND, api_client
from tests.support.crash_shelf_load import (
    BUCKETS,
    Flow,
    Position,
    ShelfCrash,
    ShelfSettled,
    details,
    settle_shelf,
)
from tests.support.processes import Stack

STATE_AFTER = {"ship": "shipped", "receive": "received", "cancel": "cancelled"}
DISPOSITION_DELTA = {"restock": "d_on_hand", "inspect": "d_quality_control", "damaged": "d_damaged"}
ACTIVE = frozenset({"held", "confirmed", "ready"})


async def check_shelf_invariants(stack: Stack, crash: ShelfCrash) -> None:
    assert crash.acks_after_restart > 0, "no operation was acknowledged after the restart"
    assert not crash.driver.unexpected, crash.driver.unexpected[:10]
    done = [f for f in crash.flows if f.unacked is None]
    assert len(done) > len(crash.flows) // 2, "most flows should have been acknowledged"
    await assert_every_acknowledged_step_replays(stack, crash.flows)
    settled = await settle_shelf(stack, crash.flows)
    for flow in crash.flows:
        assert_acknowledged_steps_are_kept(flow, settled)
    await assert_the_api_answers_the_kept_records(stack, crash.flows, settled)
    assert_each_return_is_in_the_ledger_once(settled)
    assert_each_transfer_is_in_the_ledger_once(settled)
    assert_no_movement_is_duplicated(settled)
    assert settled.positions == expected_positions(settled)
    assert ledger_sums(settled) == settled.positions
    assert_the_load_filled_every_bucket(settled)
    await assert_the_audit_finds_no_drift(stack, len(settled.positions))


async def assert_every_acknowledged_step_replays(stack: Stack, flows: list[Flow]) -> None:
    """Each acknowledged step sent once more, as a client whose answer was lost would: a
    replay (200, ``replayed`` for transfers and returns); the checks that follow find that
    it changed nothing."""
    async with api_client(stack) as api:
        for flow in flows:
            for step in flow.steps:
                if step.name not in flow.acked:
                    continue
                r = await api.request(step.method, step.path, json=step.body)
                assert r.status_code == 200, f"{step.method} {step.path}: {r.text}"
                if flow.kind != "sale" or step.path == "/v1/returns":
                    assert r.json()["replayed"] is True, r.text


def attempted(flow: Flow) -> list[str]:
    """The steps the driver sent: those acknowledged, and the one it got no answer for."""
    return flow.acked + ([flow.unacked] if flow.unacked else [])


def return_lines_sent(flow: Flow, return_id: str) -> list[list[Any]]:
    body = next(s.body for s in flow.steps if s.name == return_id)
    return sorted(
        [ln["sku"], ln["location_id"], ln["qty"], ln["disposition"]] for ln in body["lines"]
    )


def assert_acknowledged_steps_are_kept(flow: Flow, settled: ShelfSettled) -> None:
    """(a) An acknowledged step is in Redis; a step never sent left nothing there."""
    if flow.kind == "transfer":
        t = settled.transfers.get(flow.key)
        if "ship" in flow.acked:
            assert t is not None, f"acknowledged transfer {flow.key} lost"
        if t is None:
            return
        states = {STATE_AFTER[flow.acked[-1]] if flow.acked else "shipped"}
        if flow.unacked:
            states.add(STATE_AFTER[flow.unacked])  # no answer: it may have applied
        assert t["state"] in states, f"{flow.key}: {t['state']}, steps {attempted(flow)}"
        ship = flow.steps[0].body
        lines = json.loads(t["lines"])
        assert [[s, n] for s, n, _ in lines] == [[ln["sku"], ln["qty"]] for ln in ship["lines"]]
        if t["state"] == "received":
            receipt = next(s.body for s in flow.steps if s.name == "receive")
            assert [[s, r] for s, _, r in lines] == [
                [ln["sku"], ln["qty"]] for ln in receipt["lines"]
            ]
        return
    for step in flow.steps:
        if step.path != "/v1/returns":
            continue
        kept = settled.returns.get(step.name)
        if step.name in flow.acked:
            assert kept is not None, f"acknowledged return {step.name} lost"
        if step.name not in attempted(flow):
            assert kept is None, f"return {step.name} was never sent"
        if kept is not None:
            assert sorted(json.loads(kept["lines"])) == return_lines_sent(flow, step.name)
            assert kept["reservation_id"] == (flow.key if flow.kind == "sale" else "")
    if flow.kind == "sale":
        r = settled.reservations.get(flow.key)
        if "reserve" in flow.acked:
            assert r is not None, f"acknowledged reservation {flow.key} lost"
        if "fulfill" in flow.acked:
            assert r is not None
            assert r["state"] == "fulfilled", flow.key


async def assert_the_api_answers_the_kept_records(
    stack: Stack, flows: list[Flow], settled: ShelfSettled
) -> None:
    """(a, continued) GET answers every kept transfer and return as Redis holds it, and
    every position with its buckets, ``available`` counting only the shelf."""
    async with api_client(stack) as api:
        for tid, t in settled.transfers.items():
            r = await api.get(f"/v1/transfers/{tid}")
            assert (r.status_code, r.json()["state"]) == (200, t["state"]), r.text
        for return_id, kept in settled.returns.items():
            r = await api.get(f"/v1/returns/{return_id}")
            assert r.status_code == 200, r.text
            got = [
                [x["sku"], x["location_id"], x["qty"], x["disposition"]] for x in r.json()["lines"]
            ]
            assert sorted(got) == sorted(json.loads(kept["lines"])), return_id
        for (sku, loc), buckets in settled.positions.items():
            r = await api.get(f"/v1/stock/{loc}/{sku}")
            assert r.status_code == 200, r.text
            shown = r.json()
            assert {b: shown[b] for b in BUCKETS} == buckets, (sku, loc)
            sellable = buckets["on_hand"] - buckets["reserved"] - shown["safety_stock"]
            assert shown["available"] == max(0, sellable), (sku, loc)


def assert_each_return_is_in_the_ledger_once(settled: ShelfSettled) -> None:
    """(b) One ``returned`` movement per line of every return Redis has, into its bucket."""
    in_ledger: dict[str, list[list[Any]]] = {}
    for mv in settled.movements:
        if mv.kind != "returned":
            continue
        d = details(mv)
        in_ledger.setdefault(d["ret"], []).append([mv.sku, mv.location_id, mv.qty, d["disp"]])
        moved = {b: getattr(mv, b) for b in ("d_on_hand", "d_damaged", "d_quality_control")}
        assert moved == {b: mv.qty if b == DISPOSITION_DELTA[d["disp"]] else 0 for b in moved}
        assert (mv.d_reserved, mv.d_in_transit) == (0, 0)
        kept = settled.returns.get(d["ret"], {})
        assert mv.reservation_id == (kept.get("reservation_id") or None), d["ret"]
    assert sorted(in_ledger) == sorted(settled.returns)
    for return_id, kept in settled.returns.items():
        assert sorted(in_ledger[return_id]) == sorted(json.loads(kept["lines"])), return_id


def assert_each_transfer_is_in_the_ledger_once(settled: ShelfSettled) -> None:
    """(b) Per transfer Redis has: shipped at both ends per line, then one received line (and
    a shortfall where short) or cancelled at both ends, each with its deltas; no other."""
    in_ledger: dict[str, Counter[tuple[Any, ...]]] = {}
    for mv in settled.movements:
        if mv.kind.startswith("transfer_"):
            key = (mv.kind, mv.sku, mv.location_id, mv.qty, mv.d_on_hand, mv.d_in_transit)
            in_ledger.setdefault(details(mv)["xfer"], Counter())[key] += 1
    assert sorted(in_ledger) == sorted(settled.transfers)
    for tid, t in settled.transfers.items():
        src, dst, expected = t["from"], t["to"], Counter[tuple[Any, ...]]()
        for sku, shipped, received in json.loads(t["lines"]):
            expected[("transfer_shipped", sku, src, shipped, -shipped, 0)] += 1
            expected[("transfer_shipped", sku, dst, shipped, 0, shipped)] += 1
            if t["state"] == "received":
                expected[("transfer_received", sku, dst, received, received, -shipped)] += 1
                if received < shipped:
                    expected[("transfer_shortfall", sku, dst, shipped - received, 0, 0)] += 1
            if t["state"] == "cancelled":
                expected[("transfer_cancelled", sku, dst, shipped, 0, -shipped)] += 1
                expected[("transfer_cancelled", sku, src, shipped, shipped, 0)] += 1
        assert in_ledger[tid] == expected, tid


def assert_no_movement_is_duplicated(settled: ShelfSettled) -> None:
    movements = settled.movements
    assert [e for e, n in Counter(mv.event_id for mv in movements).items() if n > 1] == []
    assert [k for k, n in Counter((mv.sku, mv.seq) for mv in movements).items() if n > 1] == []


def expected_positions(settled: ShelfSettled) -> dict[Position, dict[str, int]]:
    """(c) Every bucket from the initial counts and the operations Redis holds: sales and
    holds, transfers in their state, returns into their dispositions' buckets."""
    out = {p: dict.fromkeys(BUCKETS, 0) | {"on_hand": INITIAL_ON_HAND} for p in settled.positions}
    for r in settled.reservations.values():
        for sku, loc, qty in json.loads(r["lines"]):
            if r["state"] == "fulfilled":
                out[(sku, loc)]["on_hand"] -= qty
            elif r["state"] in ACTIVE:
                out[(sku, loc)]["reserved"] += qty
    for t in settled.transfers.values():
        for sku, shipped, received in json.loads(t["lines"]):
            out[(sku, t["from"])]["on_hand"] -= shipped
            if t["state"] == "shipped":
                out[(sku, t["to"])]["in_transit"] += shipped
            elif t["state"] == "received":
                out[(sku, t["to"])]["on_hand"] += received
            else:
                out[(sku, t["from"])]["on_hand"] += shipped
    bucket = {"restock": "on_hand", "inspect": "quality_control", "damaged": "damaged"}
    for kept in settled.returns.values():
        for sku, loc, qty, disposition in json.loads(kept["lines"]):
            out[(sku, loc)][bucket[disposition]] += qty
    return out


def ledger_sums(settled: ShelfSettled) -> dict[Position, dict[str, int]]:
    """(d) Σ of each bucket's deltas per position, over the ledger's movements."""
    out = {p: dict.fromkeys(BUCKETS, 0) for p in settled.positions}
    for mv in settled.movements:
        for b in BUCKETS:
            out[(mv.sku, mv.location_id)][b] += getattr(mv, f"d_{b}")
    return out


def assert_the_load_filled_every_bucket(settled: ShelfSettled) -> None:
    total = Counter[str]()
    for buckets in settled.positions.values():
        total.update(buckets)
    assert all(total[b] > 0 for b in ("damaged", "quality_control", "in_transit")), total
    shortfalls = [mv for mv in settled.movements if mv.kind == "transfer_shortfall"]
    assert shortfalls, "no receipt came short"
