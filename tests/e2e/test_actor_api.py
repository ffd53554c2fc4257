"""An API change records the key that made it, in the outbox and in the ledger."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from stocksync.api.deps import Services
from stocksync.ledger.tables import Movement
from stocksync.metrics import Metrics
from stocksync.workers.ledger_copy import LedgerCopy
from tests.support.api import KeyFactory, Seed, hold, post_ok
from tests.support.store import event_actors


async def test_an_api_change_records_the_key_in_the_outbox_and_the_ledger(
    app: object, services: Services, make_key: KeyFactory, seed: Seed, sku: str
) -> None:
    await seed(sku, 3)
    key = make_key("read,reserve")
    key_id = key.split("_")[1]
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers=headers
    ) as client:
        await post_ok(client, "/v1/reservations", hold("who-1", sku))
    assert (await event_actors(services.store))[-1] == ("held", f"api:{key_id}")
    copy = LedgerCopy(services.store.outbox, services.ledger, Metrics(), consumer="t")
    await copy.drain_once()
    m = Movement.__table__.c  # type: ignore[attr-defined]
    with services.engine.connect() as conn:
        row = conn.execute(
            select(m.actor).where(m.namespace == services.settings.namespace, m.kind == "held")
        ).one()
    assert row.actor == f"api:{key_id}"
