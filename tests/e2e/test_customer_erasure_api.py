"""GDPR erasure of a customer reference: Redis and the ledger forget it, stock stays."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import select

from stocksync.api.deps import Services
from stocksync.domain.model import customer_ref_hash
from stocksync.ledger.tables import CustomerErasure, LedgerReservation, Movement
from stocksync.metrics import Metrics
from stocksync.workers.ledger_copy import LedgerCopy
from tests.support.api import KeyFactory, Seed, hold, position, post_ok


async def copy_outbox(services: Services) -> None:
    copy = LedgerCopy(services.store.outbox, services.ledger, Metrics(), consumer="t")
    await copy.drain_once()


def ledger_rows(services: Services) -> tuple[dict[str, str | None], list[str]]:
    """customer_ref by reservation id, and every movement's details, of the namespace."""
    ns = services.settings.namespace
    r, m = LedgerReservation.__table__.c, Movement.__table__.c  # type: ignore[attr-defined]
    with services.engine.connect() as conn:
        refs = dict(
            conn.execute(select(r.reservation_id, r.customer_ref).where(r.namespace == ns)).all()
        )
        details = conn.execute(select(m.details).where(m.namespace == ns)).scalars().all()
    return refs, [d for d in details if d]


async def test_erase_customer_removes_the_reference_everywhere_and_keeps_the_stock(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    await post_ok(client, "/v1/reservations", hold("c-active", sku, customer_ref="crm-42"))
    await post_ok(client, "/v1/reservations", hold("c-sold", sku, customer_ref="crm-42"))
    await post_ok(client, "/v1/reservations/c-sold/fulfill")
    await post_ok(client, "/v1/reservations", hold("c-other", sku, customer_ref="crm-7"))
    await copy_outbox(services)

    r = await client.delete("/v1/customers/crm-42")

    assert r.status_code == 200, r.text
    assert r.json() == {
        "customer_ref": "crm-42",
        "redis_reservations": 2,
        "ledger_reservations": 2,
    }
    for rid in ("c-active", "c-sold"):
        assert (await client.get(f"/v1/reservations/{rid}")).json()["customer_ref"] is None
    assert (await client.get("/v1/reservations/c-other")).json()["customer_ref"] == "crm-7"
    keys = services.store.keys
    assert not await services.store.client.exists(keys.customer_reservations("crm-42"))
    refs, details = ledger_rows(services)
    assert refs == {"c-active": None, "c-sold": None, "c-other": "crm-7"}
    assert not [d for d in details if "crm-42" in d]
    assert [json.loads(d).get("cref") for d in details if "cref" in d] == ["crm-7"]
    position_now = await position(client, sku)
    assert (position_now["on_hand"], position_now["reserved"]) == (4, 2)  # stock untouched
    with services.engine.connect() as conn:
        audit = conn.execute(select(CustomerErasure)).one()
    ns = services.settings.namespace
    assert audit.ref_hash == customer_ref_hash(ns, "crm-42") != "crm-42"
    assert audit.actor is not None
    assert audit.actor.startswith("api:")
    assert audit.reservations == 2
    # The ledger copy reaching the erasure event later changes nothing more.
    await copy_outbox(services)
    assert ledger_rows(services)[0] == refs


async def test_erase_customer_covers_holds_not_yet_copied_to_the_ledger(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    """The hold's event still sits in the outbox with the reference when the erasure comes:
    the ledger copy erases it when it reaches the erasure, after the hold."""
    await seed(sku, 2)
    await post_ok(client, "/v1/reservations", hold("c-fresh", sku, customer_ref="crm-99"))

    r = await client.delete("/v1/customers/crm-99")
    assert r.json()["redis_reservations"] == 1
    assert r.json()["ledger_reservations"] == 0  # not in the ledger yet
    await copy_outbox(services)

    refs, details = ledger_rows(services)
    assert refs == {"c-fresh": None}
    assert not [d for d in details if "crm-99" in d]


async def test_erase_customer_needs_admin(
    app: object, client: httpx.AsyncClient, make_key: KeyFactory
) -> None:
    r = await client.delete(
        "/v1/customers/crm-1",
        headers={"Authorization": f"Bearer {make_key('read,reserve')}"},
    )
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"
