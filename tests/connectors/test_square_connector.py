"""The Square connector end to end: a Square stub on loopback, the real engine (Redis + SQL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from pydantic import SecretStr

from connectors.framework.pipeline import Pipeline
from connectors.framework.state import ConnectorState
from connectors.square.client import SquareRefused
from connectors.square.connector import SquareConnector, create
from connectors.square.mapping import map_change
from connectors.square.poller import Checkpoint
from stocksync.domain.model import DEFAULT_DOMAIN, Line, Location, State
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore
from tests.support.square_connector import (
    ITEM,
    LOC,
    LOC2,
    OTHER_ITEM,
    SQ_LOC,
    SQ_LOC2,
    config_table,
    write_mapping,
)
from tests.support.square_payloads import (
    adjustment,
    ago,
    inventory_count,
    physical_count,
    transfer,
)
from tests.support.square_stub import SquareStub
from tests.support.stub_server import StubServer


@dataclass
class Square:
    stub: SquareStub
    connector: SquareConnector
    sku: str
    other_sku: str


@pytest.fixture
async def square(
    stub_server: StubServer, store: RedisStockStore, tmp_path: Path, sku: str
) -> AsyncIterator[Square]:
    await store.upsert_location(Location(LOC, "Store A", "store", 52.52, 13.40, True, True))
    await store.upsert_location(Location(LOC2, "Store B", "store", 52.40, 13.06, True, True))
    other = "SKU-" + uuid.uuid4().hex[:10]
    mapping = write_mapping(tmp_path / "square-mapping.toml", {ITEM: sku, OTHER_ITEM: other})
    stub = SquareStub()
    async with stub_server(stub.app()) as url:
        yield Square(stub, create(config_table(url, mapping)), sku, other)


async def on_hand(store: RedisStockStore, sku: str) -> int:
    return (await store.position(sku, LOC)).on_hand


async def test_sync_once_applies_counts_and_moves_and_keeps_its_checkpoint(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    square.stub.changes = [
        physical_count("PC1", ITEM, SQ_LOC, "10", ago(minutes=60)),
        adjustment("SALE1", ITEM, SQ_LOC, "2", ago(minutes=30)),
        adjustment("RCPT1", ITEM, SQ_LOC, "5", ago(minutes=20), "NONE", "IN_STOCK"),
        adjustment("WASTE1", ITEM, SQ_LOC, "1", ago(minutes=10), "IN_STOCK", "WASTE"),
        adjustment("MOVE1", ITEM, SQ_LOC, "3", ago(minutes=5), "RESERVED_FOR_SALE", "SOLD"),
    ]
    summary = await square.connector.sync_once(ctx)
    assert await on_hand(store, square.sku) == 10 - 2 + 5 - 1
    assert summary.pages == 3  # two changes a page
    assert summary.outcomes == {"applied": 4, "ignored": 1}
    point = Checkpoint.parse(ConnectorState(ctx.engine, "square").checkpoint(), "")
    assert point.cursor is None
    assert point.updated_after > ago(minutes=7)  # newest created_at less the overlap

    again = await square.connector.sync_once(ctx)  # the overlap re-reads, nothing re-applies
    assert "applied" not in again.outcomes
    assert again.changes < summary.changes
    assert await on_hand(store, square.sku) == 12
    assert all(r["location_ids"] == [SQ_LOC, SQ_LOC2] for r in square.stub.requests)
    assert set(square.stub.versions) == {"2024-12-18"}


async def test_sync_once_asks_only_for_the_change_types_squares_filter_takes(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    """Square's ``types`` filter takes "values other than TRANSFER"; asking for TRANSFER was
    refused by the stub (as Square may) and stopped polling altogether."""
    square.stub.changes = [
        adjustment("RCPT1", ITEM, SQ_LOC, "5", ago(minutes=20), "NONE", "IN_STOCK")
    ]
    summary = await square.connector.sync_once(ctx)
    assert summary.outcomes == {"applied": 1}
    changes = [r for r in square.stub.requests if "types" in r]
    assert changes
    assert all(r["types"] == ["PHYSICAL_COUNT", "ADJUSTMENT"] for r in changes)


async def test_sync_once_refused_by_square_fails_with_squares_reason(
    square: Square, ctx: EngineContext, tmp_path: Path
) -> None:
    config = square.connector.config.model_copy(update={"access_token": SecretStr("revoked")})
    with pytest.raises(SquareRefused, match="UNAUTHORIZED") as refused:
        await SquareConnector(config).sync_once(ctx)
    assert refused.value.response.status_code == 401
    assert refused.value.codes == {"UNAUTHORIZED"}


async def test_sync_once_resumes_from_the_page_it_failed_on(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    square.stub.changes = [
        physical_count("PC1", ITEM, SQ_LOC, "10", ago(minutes=60)),
        adjustment("S1", ITEM, SQ_LOC, "1", ago(minutes=50)),
        adjustment("S2", ITEM, SQ_LOC, "1", ago(minutes=40)),
        adjustment("S3", ITEM, SQ_LOC, "1", ago(minutes=30)),
    ]
    square.stub.fail_on = {2, 3}  # page 2 fails on the try and the one retry
    with pytest.raises(httpx.HTTPStatusError):
        await square.connector.sync_once(ctx)
    point = Checkpoint.parse(ConnectorState(ctx.engine, "square").checkpoint(), "")
    [page_2] = square.stub.cursors_issued
    assert point.cursor == page_2  # page 1 is in; the page that failed was not skipped
    assert await on_hand(store, square.sku) == 9

    summary = await square.connector.sync_once(ctx)  # resumes at the saved cursor
    assert summary.outcomes == {"applied": 2}
    assert await on_hand(store, square.sku) == 7
    assert square.stub.requests[3]["cursor"] == page_2


async def test_sync_once_sweeps_again_when_square_no_longer_takes_the_saved_cursor(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    """A cursor saved before a crash may be refused later (pages have a limited lifespan):
    the sweep starts again at its watermark instead of failing on every poll."""
    square.stub.changes = [
        physical_count("PC1", ITEM, SQ_LOC, "10", ago(minutes=60)),
        adjustment("S1", ITEM, SQ_LOC, "1", ago(minutes=50)),
        adjustment("S2", ITEM, SQ_LOC, "1", ago(minutes=40)),
    ]
    square.stub.fail_on = {2, 3}
    with pytest.raises(httpx.HTTPStatusError):
        await square.connector.sync_once(ctx)
    assert Checkpoint.parse(ConnectorState(ctx.engine, "square").checkpoint(), "").cursor
    square.stub.expire_cursors()

    summary = await square.connector.sync_once(ctx)

    assert summary.outcomes == {"duplicate": 2, "applied": 1}
    assert await on_hand(store, square.sku) == 8
    refused, again = square.stub.requests[3:5]
    assert refused.get("cursor")
    assert "cursor" not in again
    point = Checkpoint.parse(ConnectorState(ctx.engine, "square").checkpoint(), "")
    assert point.cursor is None


async def outbox_kinds(store: RedisStockStore, reservation_id: str) -> list[str]:
    entries = await store.client.xrange(store.keys.outbox)
    return [f["kind"] for _, f in entries if f.get("res") == reservation_id]


async def test_bopis_collected_at_till_fulfils_the_hold_once(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    """A chat hold on the last unit, collected at the till: Square's sale names the hold."""
    square.stub.changes = [physical_count("PC1", ITEM, SQ_LOC, "1", ago(minutes=60))]
    await square.connector.sync_once(ctx)
    await store.reserve("chat-4711", "chat", [Line(square.sku, LOC, 1)], ttl_seconds=3600)
    sale = adjustment(
        "SALE-BOPIS", ITEM, SQ_LOC, "1", ago(minutes=1), reference_id="stocksync:chat-4711"
    )
    square.stub.changes.append(sale)

    first = await square.connector.sync_once(ctx)
    ConnectorState(ctx.engine, "square").save_checkpoint(Checkpoint("1970-01-01T00:00:00Z").dump())
    replay = await square.connector.sync_once(ctx)  # Square's changes delivered all over again
    pipeline = Pipeline("square", ctx)  # and the one change once more, on its own
    assert await pipeline.apply(
        "replay", "{}", map_change(sale, square.connector.ids, "stocksync:")
    )

    assert first.outcomes == {"applied": 1, "duplicate": 1}  # the count, re-read by the overlap
    assert replay.outcomes == {"duplicate": 2}
    position = await store.position(square.sku, LOC)
    assert (position.on_hand, position.reserved) == (0, 0)
    assert (await store.get_reservation("chat-4711")).state is State.FULFILLED
    assert await outbox_kinds(store, "chat-4711") == ["held", "fulfilled"]


async def test_till_sale_of_a_unit_held_for_another_customer_is_applied(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    """A till cannot be refused (DESIGN rule 8): availability goes negative, the hold is at risk."""
    square.stub.changes = [physical_count("PC1", ITEM, SQ_LOC, "1", ago(minutes=60))]
    await square.connector.sync_once(ctx)
    await store.reserve("web-99", "web", [Line(square.sku, LOC, 1)], ttl_seconds=3600)
    square.stub.changes.append(adjustment("SALE-WALKIN", ITEM, SQ_LOC, "1", ago(minutes=1)))

    summary = await square.connector.sync_once(ctx)

    assert summary.outcomes["applied"] == 1
    position = await store.position(square.sku, LOC)
    assert (position.on_hand, position.reserved, position.available_raw) == (0, 1, -1)
    held = await store.get_reservation("web-99")
    assert held.state is State.HELD
    assert held.at_risk


async def test_sync_once_dead_letters_what_it_cannot_map_and_goes_on(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    square.stub.changes = [
        physical_count("PC1", ITEM, SQ_LOC, "4", ago(minutes=60)),
        adjustment("FRACTION", ITEM, SQ_LOC, "0.5", ago(minutes=50)),
        adjustment("UNMAPPED", "NOT-IN-MAPPING", SQ_LOC, "1", ago(minutes=40)),
        adjustment("S1", ITEM, SQ_LOC, "1", ago(minutes=30)),
    ]
    summary = await square.connector.sync_once(ctx)
    await square.connector.sync_once(ctx)  # the overlap re-reads both: lettered once

    assert summary.outcomes == {"applied": 2, "dead_letter": 2}
    assert await on_hand(store, square.sku) == 3
    letters = ConnectorState(ctx.engine, "square").dead_letters()
    reasons = sorted(letter.reason for letter in letters)
    assert len(reasons) == 2
    assert "NOT-IN-MAPPING" in reasons[0]
    assert "whole number" in reasons[1]
    assert json.loads(letters[0].payload)["adjustment"]["id"] in {"FRACTION", "UNMAPPED"}


async def test_drift_compares_square_counts_with_on_hand(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    square.stub.changes = [
        physical_count("PC1", ITEM, SQ_LOC, "12", ago(minutes=60)),
        physical_count("PC2", OTHER_ITEM, SQ_LOC, "5", ago(minutes=60)),
    ]
    await square.connector.sync_once(ctx)
    square.stub.counts = [
        inventory_count(ITEM, SQ_LOC, "12", ago(seconds=5)),
        inventory_count(OTHER_ITEM, SQ_LOC, "7", ago(seconds=5)),
        inventory_count("NOT-IN-MAPPING", SQ_LOC, "3", ago(seconds=5)),
        inventory_count(ITEM, SQ_LOC, "2", ago(seconds=5), state="WASTE"),
    ]
    drifts = await square.connector.drift(ctx)

    assert drifts is not None
    assert [(d.sku, d.location_id, d.source, d.engine) for d in drifts] == [
        (square.other_sku, LOC, 7, 5)
    ]
    assert (
        ctx.registry.get_sample_value("stocksync_source_drift_units", {"connector": "square"}) == 2
    )
    assert all(r["states"] == ["IN_STOCK"] for r in square.stub.requests if "states" in r)


async def test_run_polls_and_checks_drift_until_cancelled(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    square.connector.config.drift_interval_seconds = 0.05
    square.stub.changes = [physical_count("PC1", ITEM, SQ_LOC, "9", ago(minutes=60))]
    square.stub.counts = [inventory_count(ITEM, SQ_LOC, "9", ago(minutes=60))]
    units = {"connector": "square"}
    async with anyio.create_task_group() as tg:
        tg.start_soon(square.connector.run, ctx)
        with anyio.fail_after(30):  # a bounded wait for the loop to get there
            while await on_hand(store, square.sku) != 9:  # noqa: ASYNC110
                await anyio.sleep(0.02)
            # units leave in the engine but not in Square: the drift check sees 9 - 6 = 3
            await store.adjust(
                square.sku, LOC, -3, reason="damaged", source="test", source_event_id="dmg-1"
            )
            while ctx.registry.get_sample_value("stocksync_source_drift_units", units) != 3:  # noqa: ASYNC110
                await anyio.sleep(0.02)
            square.stub.changes.append(adjustment("S1", ITEM, SQ_LOC, "2", ago(seconds=30)))
            while await on_hand(store, square.sku) != 4:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    applied = {"connector": "square", "outcome": "applied"}  # the count twice, then the sale
    assert ctx.registry.get_sample_value("stocksync_connector_events_total", applied) == 3


async def test_transfer_between_our_stores_reaches_both_through_squares_counts(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    """Square's changes query does not list transfers; the counts they change do."""
    moved_at = ago(minutes=20)
    square.stub.changes = [
        physical_count("PC-A", ITEM, SQ_LOC, "10", ago(minutes=60)),
        physical_count("PC-B", ITEM, SQ_LOC2, "0", ago(minutes=60)),
        transfer("TR1", ITEM, SQ_LOC, SQ_LOC2, "4", moved_at),  # never served by the query
        adjustment("S1", ITEM, SQ_LOC2, "1", ago(minutes=10)),  # sold after the transfer
    ]
    square.stub.counts = [  # Square's counts after the transfer, before the sale was made
        inventory_count(ITEM, SQ_LOC, "6", moved_at),
        inventory_count(ITEM, SQ_LOC2, "4", moved_at),
    ]

    summary = await square.connector.sync_once(ctx)

    assert summary.outcomes == {"applied": 3}
    assert summary.count_outcomes == {"applied": 2}
    assert await on_hand(store, square.sku) == 6
    assert (await store.position(square.sku, LOC2)).on_hand == 4 - 1  # the sale is kept
    [counts_request] = [r for r in square.stub.requests if "states" in r]
    assert counts_request["updated_after"] == "1970-01-01T00:00:00Z"
    assert counts_request["states"] == ["IN_STOCK"]


async def test_counts_pass_resumes_after_its_newest_count_and_rereads_are_duplicates(
    square: Square, ctx: EngineContext, store: RedisStockStore
) -> None:
    newest = ago(minutes=5)
    square.stub.counts = [
        inventory_count(ITEM, SQ_LOC, "7", ago(minutes=30)),
        inventory_count(OTHER_ITEM, SQ_LOC, "2", newest),
        inventory_count(ITEM, SQ_LOC, "1", newest, state="WASTE"),  # not asked for
        inventory_count("NOT-IN-MAPPING", SQ_LOC, "3", newest),  # not ours
        inventory_count(OTHER_ITEM, SQ_LOC2, "0.5", ago(minutes=20)),  # unreadable
    ]
    first = await square.connector.sync_once(ctx)
    again = await square.connector.sync_once(ctx)

    assert first.count_outcomes == {"applied": 2, "ignored": 1, "dead_letter": 1}
    assert again.counts == 2  # the overlap re-reads what changed in its last minute
    assert again.count_outcomes == {"duplicate": 1, "ignored": 1}
    assert await on_hand(store, square.sku) == 7
    assert (await store.position(square.other_sku, LOC)).on_hand == 2
    point = Checkpoint.parse(ConnectorState(ctx.engine, "square").checkpoint(), "")
    assert point.counts_after is not None
    assert ago(minutes=6, seconds=1) < point.counts_after < newest
    [letter] = ConnectorState(ctx.engine, "square").dead_letters()
    assert (letter.kind, "whole number" in letter.reason) == ("count", True)


async def test_sync_once_applies_a_page_of_counts_and_moves_in_one_batched_call(
    square: Square, ctx: EngineContext, store: RedisStockStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    square.stub.page_size = 6
    square.stub.changes = [
        physical_count("PC1", ITEM, SQ_LOC, "10", ago(minutes=60)),
        adjustment("RCPT1", ITEM, SQ_LOC, "5", ago(minutes=50), "NONE", "IN_STOCK"),
        adjustment("SALE1", ITEM, SQ_LOC, "2", ago(minutes=40)),  # a till sale: on its own
        adjustment("WASTE1", ITEM, SQ_LOC, "1", ago(minutes=30), "IN_STOCK", "WASTE"),
        physical_count("PC0", ITEM, SQ_LOC, "99", ago(minutes=70)),
        adjustment("RCPT2", OTHER_ITEM, SQ_LOC2, "4", ago(minutes=20), "NONE", "IN_STOCK"),
    ]
    calls: list[str] = []
    run = store.run

    async def counted(name: str, *args: str | int, domain: str = DEFAULT_DOMAIN) -> object:
        calls.append(name)
        return await run(name, *args, domain=domain)

    monkeypatch.setattr(store, "run", counted)
    summary = await square.connector.sync_once(ctx)

    assert summary.outcomes == {"applied": 6}
    assert await on_hand(store, square.sku) == 10 + 5 - 2 - 1
    assert (await store.position(square.other_sku, LOC2)).on_hand == 4
    # the changes before the sale (in Square's order) in one call, those after it in another
    assert calls.count("stock_changes") == 2
    assert calls.count("sell") == 1
    assert "set_count" not in calls
    assert "adjust" not in calls
