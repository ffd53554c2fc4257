"""The ledger through HTTP: sales written before they are acknowledged, position history."""

from __future__ import annotations

import httpx
from sqlmodel import Session, select

from stocksync.api.deps import Services
from stocksync.ledger.tables import Movement
from stocksync.store.outbox import decode_event
from tests.support.api import Seed


def movements(services: Services, reservation_id: str) -> list[Movement]:
    with Session(services.engine) as session:
        return list(session.exec(select(Movement).where(Movement.reservation_id == reservation_id)))


async def test_fulfill_is_in_the_ledger_when_acknowledged(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    # The fixture app runs no workers: only the write-through can have put rows in SQL.
    assert not services.settings.run_workers
    await seed(sku, 3)
    body = {
        "reservation_id": "sale-1",
        "channel": "pos",
        "lines": [{"sku": sku, "location_id": "store-a", "qty": 2}],
    }
    await client.post("/v1/reservations", json=body)
    assert movements(services, "sale-1") == []
    r = await client.post("/v1/reservations/sale-1/fulfill")
    assert r.status_code == 200
    rows = movements(services, "sale-1")
    assert [(m.kind, m.d_on_hand, m.d_reserved, m.on_hand) for m in rows] == [
        ("fulfilled", -2, -2, 1)
    ]
    again = await client.post("/v1/reservations/sale-1/fulfill")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(movements(services, "sale-1")) == 1


async def test_position_history_pages_movements_newest_first(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 10)
    for i in range(4):
        r = await client.post(
            f"/v1/stock/store-a/{sku}/adjustments",
            json={"delta": -1, "reason": "sale", "source": "pos", "source_event_id": f"h{i}"},
        )
        assert r.status_code == 200
    raw = await services.store.client.xrange(services.store.keys.outbox)
    events = [decode_event(services.settings.namespace, sid, f) for sid, f in raw]
    services.ledger.record(events)
    page = (await client.get(f"/v1/stock/store-a/{sku}/history", params={"limit": 3})).json()
    assert [m["seq"] for m in page["movements"]] == [5, 4, 3]
    assert [m["on_hand"] for m in page["movements"]] == [6, 7, 8]
    assert page["movements"][0]["source_event_id"] == "h3"
    rest = await client.get(
        f"/v1/stock/store-a/{sku}/history", params={"before_seq": page["next_before_seq"]}
    )
    assert [m["kind"] for m in rest.json()["movements"]] == ["adjusted", "counted"]
    assert rest.json()["next_before_seq"] is None


async def test_reservation_pruned_from_redis_is_read_from_the_ledger(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 3)
    body = {
        "reservation_id": "old-1",
        "channel": "web",
        "lines": [{"sku": sku, "location_id": "store-a", "qty": 1}],
    }
    await client.post("/v1/reservations", json=body)
    await client.post("/v1/reservations/old-1/release")
    raw = await services.store.client.xrange(services.store.keys.outbox)
    services.ledger.record([decode_event(services.settings.namespace, i, f) for i, f in raw])
    live = (await client.get("/v1/reservations/old-1")).json()
    await services.store.client.delete(services.store.keys.reservation("old-1"))  # retention
    archived = await client.get("/v1/reservations/old-1")
    assert archived.status_code == 200
    assert archived.json()["state"] == "released"
    assert archived.json()["lines"] == live["lines"]
    assert [h["state"] for h in archived.json()["history"]] == ["held", "released"]


async def test_a_change_stated_in_an_early_year_reads_back_in_the_history(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    """A client may say a change occurred in year 229: the ledger stores a time every reader
    parses (the year at four digits), so the history answers instead of failing."""
    await seed(sku, 10)
    r = await client.post(
        f"/v1/stock/store-a/{sku}/adjustments",
        json={
            "delta": -1,
            "reason": "sale",
            "source": "pos",
            "source_event_id": "early",
            "occurred_at": "0229-06-07T03:20:20.61Z",
        },
    )
    assert r.status_code == 200, r.text
    raw = await services.store.client.xrange(services.store.keys.outbox)
    services.ledger.record([decode_event(services.settings.namespace, sid, f) for sid, f in raw])
    page = await client.get(f"/v1/stock/store-a/{sku}/history")
    assert page.status_code == 200, page.text
    assert page.json()["movements"][0]["occurred_at"].startswith("0229-06-07T03:20:20.61")
