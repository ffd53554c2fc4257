"""Stock beyond the shelf on the pages, in a real browser against a real ``stocksync serve``:
a return with inspection at the returns desk, a transfer receipt with a shortfall, the one-click
re-sourcing of a hold at risk, arrivals promised on the chat page, and both pages in German and
English. Chromium is Debian's, driven by Playwright (see tests/support/pages.py).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from stocksync.store.embedded import EmbeddedRedis
from tests.support.pages import chromium, sign_in, watch_errors
from tests.support.serve import running_serve, serve_env

pytestmark = pytest.mark.slow

BERLIN = ZoneInfo("Europe/Berlin")
STORES = {
    "store-a": {"name": "Kreuzberg Store", "lat": 52.4990, "lon": 13.4100},
    "store-b": {"name": "Mitte Store", "lat": 52.5219, "lon": 13.4132},  # ~2.6 km from store-a
}
WAREHOUSE = {"name": "Warehouse North", "lat": 52.60, "lon": 13.30, "kind": "warehouse"}


@dataclass
class Server:
    url: str
    admin_key: str  # seeds, ships transfers, plays the web checkout
    agent_key: str  # chat page: read, reserve, every location
    staff_key: str  # store page: read, reserve, stock:write, bound to store-a and store-b


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    deployment = serve_env(redis_server.url, tmp_path_factory.mktemp("shelf"), "shelf")
    admin = deployment.create_key("admin", "admin")  # first, alone: it creates the tables
    with ThreadPoolExecutor(2) as pool:  # a CLI start takes seconds: overlap them
        agent = pool.submit(deployment.create_key, "agent", "read,reserve")
        staff = pool.submit(
            deployment.create_key, "staff", "read,reserve,stock:write", "store-a,store-b"
        )
        keys = (admin, agent.result(), staff.result())
    with running_serve(deployment) as url:
        with httpx.Client(base_url=url, headers=bearer(admin), timeout=30) as api:
            for location_id, place in STORES.items():
                put(api, f"/v1/locations/{location_id}", {**place, "kind": "store", "pickup": True})
            put(api, "/v1/locations/wh-north", WAREHOUSE)
        yield Server(url, *keys)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=bearer(server.admin_key), timeout=30) as c:
        yield c


@pytest.fixture
def context(browser: Browser, server: Server) -> Iterator[BrowserContext]:
    """An English (British) browser in Berlin's time zone."""
    ctx = browser.new_context(
        locale="en-GB", timezone_id="Europe/Berlin", viewport={"width": 1280, "height": 900}
    )
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def errors() -> Iterator[list[str]]:
    found: list[str] = []
    yield found
    assert found == [], "\n".join(found)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def put(api: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = api.put(path, json=body)
    assert r.status_code in (200, 201), r.text
    reply: dict[str, Any] = r.json()
    return reply


def post(api: httpx.Client, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = api.post(path, json=body)
    assert r.status_code in (200, 201), r.text
    reply: dict[str, Any] = r.json()
    return reply


def position(api: httpx.Client, location_id: str, sku: str) -> dict[str, Any]:
    r = api.get(f"/v1/stock/{location_id}/{sku}")
    assert r.status_code == 200, r.text
    reply: dict[str, Any] = r.json()
    return reply


def new_sku(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:8].upper()}"


def pickup_order(
    api: httpx.Client, sku: str, location_id: str = "store-a", qty: int = 1
) -> dict[str, Any]:
    """A web order of ``qty`` units for pickup at ``location_id``, confirmed."""
    rid = f"web-{uuid.uuid4().hex[:12]}"
    body = {
        "reservation_id": rid,
        "channel": "web",
        "customer_ref": "crm-0815",
        "lines": [{"sku": sku, "location_id": location_id, "qty": qty}],
    }
    post(api, "/v1/reservations", body)
    return post(api, f"/v1/reservations/{rid}/confirm", {})


def store_page(context: BrowserContext, server: Server, errors: list[str]) -> Page:
    page = watch_errors(context.new_page(), errors)
    page.goto(f"{server.url}/ui/store?location=store-a")
    sign_in(page, server.staff_key)
    expect(page.get_by_role("heading", level=1)).to_have_text("Store · Kreuzberg Store")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    return page


def next_thursday_10() -> datetime:
    """The next Thursday, 10:00 in Berlin, at least an hour from now (within 7 days)."""
    now = datetime.now(BERLIN)
    day = now + timedelta(days=(3 - now.weekday()) % 7)
    at = day.replace(hour=10, minute=0, second=0, microsecond=0)
    return at if at > now + timedelta(hours=1) else at + timedelta(days=7)


def test_a_return_with_inspection_goes_back_on_sale(
    server: Server,
    api: httpx.Client,
    context: BrowserContext,
    errors: list[str],
    artifacts_dir: Path,
) -> None:
    sku = new_sku("LAMP")
    put(api, f"/v1/stock/store-a/{sku}", {"on_hand": 3})
    order = pickup_order(api, sku)
    rid, code = order["reservation_id"], order["hold_code"]
    staff = store_page(context, server, errors)

    # Collected at the till ...
    card = staff.get_by_test_id("pickup").filter(has_text=code)
    card.get_by_role("button", name=f"Collected ({code})").click()
    expect(card).to_have_count(0)
    assert api.get(f"/v1/reservations/{rid}").json()["state"] == "fulfilled"

    # ... and brought back: the returns desk finds the order by its hold code.
    staff.get_by_role("link", name="Returns desk").click()
    find = staff.get_by_label("Hold code or reservation id")
    find.fill(code.lower().replace("-", ""))  # as a customer might read it out
    find.press("Enter")
    expect(staff.get_by_role("heading", name=f"Order {code}")).to_be_focused()
    line = staff.get_by_test_id("return-line").filter(has_text=sku)
    expect(line.get_by_test_id("collected")).to_have_text("1")
    expect(line.get_by_test_id("returned")).to_have_text("0")
    line.get_by_label(f"Units of {sku} to return (at most 1)").fill("1")
    line.get_by_label(f"Where the returned {sku} goes").select_option(label="Inspection")
    staff.get_by_role("button", name="Record the return").click()
    done = staff.locator("#returns-status")
    expect(done).to_contain_text(
        f"Returned from {code}: 1 \N{MULTIPLICATION SIGN} {sku} (Inspection)"
    )
    expect(done).to_be_focused()
    expect(line.get_by_test_id("returned")).to_have_text("1")
    expect(line.get_by_role("spinbutton")).to_be_disabled()  # nothing left to return
    reservation = api.get(f"/v1/reservations/{rid}").json()
    assert reservation["returned_units"] == {sku: 1}
    (return_id,) = reservation["return_ids"]
    assert return_id.startswith("desk-")
    assert api.get(f"/v1/returns/{return_id}").json()["lines"] == [
        {"sku": sku, "location_id": "store-a", "qty": 1, "disposition": "inspect"}
    ]
    here = position(api, "store-a", sku)
    assert (here["on_hand"], here["quality_control"], here["available"]) == (2, 1, 2)

    # The unit waits in the inspection queue; it passes and goes back on sale.
    row = staff.get_by_test_id("inspect-row").filter(has_text=sku)
    expect(row.get_by_test_id("inspect-units")).to_have_text("1")
    stock = staff.get_by_test_id(f"stock-row-{sku}")
    expect(stock.get_by_test_id("stock-quality-control")).to_have_text("1")
    staff.screenshot(path=artifacts_dir / "store-page-inspection.png", full_page=True)
    restock = row.get_by_role("button", name=f"Back on sale ({sku})")
    restock.focus()
    staff.keyboard.press("Enter")
    expect(row).to_have_count(0)
    expect(staff.get_by_text("Nothing waiting for inspection.", exact=False)).to_be_visible()
    here = position(api, "store-a", sku)
    assert (here["on_hand"], here["quality_control"], here["available"]) == (3, 0, 3)
    expect(stock.get_by_test_id("stock-available")).to_have_text("3")
    expect(stock.get_by_test_id("stock-quality-control")).to_have_text("0")


def test_a_transfer_is_received_with_a_shortfall(
    server: Server,
    api: httpx.Client,
    context: BrowserContext,
    errors: list[str],
    artifacts_dir: Path,
) -> None:
    sku = new_sku("SOFA")
    put(api, f"/v1/stock/wh-north/{sku}", {"on_hand": 10})
    put(api, f"/v1/stock/store-a/{sku}", {"on_hand": 1})
    staff = store_page(context, server, errors)
    expect(staff.get_by_text("No transfers on their way.")).to_be_visible()

    # The warehouse ships four; the open store page lists the transfer by itself.
    xid = f"T-{uuid.uuid4().hex[:8]}"
    expected = next_thursday_10()
    shipped = post(
        api,
        "/v1/transfers",
        {
            "transfer_id": xid,
            "from_location_id": "wh-north",
            "to_location_id": "store-a",
            "lines": [{"sku": sku, "qty": 4}],
            "expected_at": expected.isoformat(),
        },
    )
    assert shipped["state"] == "shipped"
    transfer = staff.get_by_test_id("transfer").filter(has_text=xid)
    expect(transfer.get_by_role("heading")).to_have_text(f"Transfer {xid} from wh-north")
    expect(transfer).to_contain_text(re.compile(f"Expected Thu {expected.day} [A-Z][a-z]+, 10:00"))
    expect(transfer.get_by_test_id("shipped")).to_have_text("4")
    stock = staff.get_by_test_id(f"stock-row-{sku}")
    expect(stock.get_by_test_id("stock-in-transit")).to_have_text("4")

    # Three arrived: staff count them and receive; one is reported missing.
    received = transfer.get_by_label(f"Units of {sku} received (of 4 shipped)")
    expect(received).to_have_value("4")
    received.fill("3")
    transfer.get_by_role("button", name=f"Receive ({xid})").click()
    receipt = staff.get_by_test_id("receipt").filter(has_text=xid)
    expect(receipt).to_contain_text(
        f"3 of 4 \N{MULTIPLICATION SIGN} {sku} received, 1 missing (reported as a shortfall)"
    )
    expect(transfer).to_have_count(0)
    expect(stock.get_by_test_id("stock-on-hand")).to_have_text("4")
    expect(stock.get_by_test_id("stock-in-transit")).to_have_text("0")
    staff.screenshot(path=artifacts_dir / "store-page-transfer.png", full_page=True)
    got = api.get(f"/v1/transfers/{xid}").json()
    assert got["state"] == "received"
    assert got["lines"] == [{"sku": sku, "shipped": 4, "received": 3, "shortfall": 1}]
    here = position(api, "store-a", sku)
    assert (here["on_hand"], here["in_transit"]) == (4, 0)


def test_a_hold_at_risk_moves_to_the_nearest_store_with_stock_in_one_click(
    server: Server,
    api: httpx.Client,
    context: BrowserContext,
    errors: list[str],
    artifacts_dir: Path,
) -> None:
    sku = new_sku("CHAIR")
    put(api, f"/v1/stock/store-a/{sku}", {"on_hand": 2})
    put(api, f"/v1/stock/store-b/{sku}", {"on_hand": 5})
    order = pickup_order(api, sku)
    rid, code = order["reservation_id"], order["hold_code"]
    staff = store_page(context, server, errors)
    expect(staff.get_by_test_id("pickup").filter(has_text=code)).to_be_visible()

    # The till sells both units: the order is at risk, and Mitte has the chair.
    sale = {"delta": -2, "reason": "sale", "source": "pos", "source_event_id": f"{rid}-till"}
    post(api, f"/v1/stock/store-a/{sku}/adjustments", sale)
    warning = staff.get_by_test_id("at-risk").filter(has_text=code)
    expect(warning).to_contain_text("crm-0815")
    move = warning.get_by_role("button", name=f"Move to Mitte Store (2.6 km) ({code})")
    expect(move).to_be_visible()
    staff.screenshot(path=artifacts_dir / "store-page-resource.png", full_page=True)
    move.click()

    notice = staff.locator("#notice")
    expect(notice).to_have_text(f"{code} moved to Mitte Store: the customer collects it there.")
    expect(notice).to_be_focused()
    expect(warning).to_have_count(0)
    expect(staff.get_by_test_id("pickup").filter(has_text=code)).to_have_count(0)
    moved = api.get(f"/v1/reservations/{rid}").json()
    assert moved["lines"] == [{"sku": sku, "location_id": "store-b", "qty": 1}]
    assert (moved["state"], moved["at_risk"]) == ("confirmed", False)
    assert position(api, "store-b", sku)["reserved"] == 1


def test_the_chat_agent_promises_units_arriving_at_a_store(
    server: Server, api: httpx.Client, context: BrowserContext, errors: list[str]
) -> None:
    sku = new_sku("BED")
    put(api, f"/v1/stock/store-a/{sku}", {"on_hand": 0})
    put(api, f"/v1/stock/store-b/{sku}", {"on_hand": 1})
    expected = next_thursday_10()
    supply = {"qty": 2, "expected_at": expected.isoformat()}
    put(api, f"/v1/stock/store-b/{sku}/incoming/po-{uuid.uuid4().hex[:6]}", supply)

    chat = watch_errors(context.new_page(), errors)
    chat.goto(f"{server.url}/ui/chat")
    sign_in(chat, server.agent_key)
    chat.get_by_label("SKU").fill(sku)
    chat.get_by_label("Area").select_option(label="Kreuzberg")
    by = chat.get_by_label("Arriving by")
    week = (datetime.now(BERLIN) + timedelta(days=7)).date().isoformat()
    expect(by).to_have_value(week)  # the next seven days, unless the agent picks a date
    chat.get_by_role("button", name="Search").click()
    mitte = chat.get_by_test_id("result-row").filter(has_text="Mitte Store")
    expect(mitte.get_by_test_id("available")).to_have_text("1")
    expect(mitte.get_by_test_id("available-by")).to_have_text("3")
    arriving = mitte.get_by_test_id("arriving")
    expect(arriving).to_have_text("2 more arriving Thu 10:00 at Mitte Store")
    kreuzberg = chat.get_by_test_id("result-row").filter(has_text="Kreuzberg Store")
    expect(kreuzberg.get_by_test_id("arriving")).to_have_text("Nothing on its way")

    # The agent promises them: a text for the customer, in the customer's language.
    mitte.get_by_role("button", name="Promise at Mitte Store").click()
    expect(chat.get_by_role("heading", name=f"Promise {sku} at Mitte Store")).to_be_focused()
    text = chat.get_by_label("Text for the customer")
    day = f"{expected.day} {expected.strftime('%B')}"
    expect(text).to_have_value(
        f"Good news: 2 more {sku} are expected at Mitte Store on Thursday {day} at 10:00. "
        "You can pick one up there from then on."
    )
    chat.get_by_label("Customer's language").select_option(label="Deutsch")
    expect(text).to_have_value(re.compile(r"^Gute Nachricht: 2 weitere Exemplare .* Donnerstag"))
    chat.get_by_role("button", name="Copy text").click()
    expect(chat.get_by_text("Copied the text to the clipboard.")).to_be_visible()
    assert chat.evaluate("navigator.clipboard.readText()") == text.input_value()

    # Earlier than the arrival nothing more is promised.
    by.fill(datetime.now(BERLIN).date().isoformat())
    chat.get_by_role("button", name="Search").click()
    expect(mitte.get_by_test_id("available-by")).to_have_text("1")


def test_the_pages_speak_german_and_english(
    server: Server, browser: Browser, api: httpx.Client, errors: list[str]
) -> None:
    sku = new_sku("TABLE")
    put(api, f"/v1/stock/store-a/{sku}", {"on_hand": 2})
    german = browser.new_context(locale="de-DE", timezone_id="Europe/Berlin")
    try:
        # A German browser starts in German, the sign-in form included.
        chat = watch_errors(german.new_page(), errors)
        chat.goto(f"{server.url}/ui/chat")
        expect(chat.locator("html")).to_have_attribute("lang", "de")
        sign_in(chat, server.agent_key, label="API-Schlüssel")
        heading = chat.get_by_role("heading", level=1)
        expect(heading).to_have_text("Für Kunden reservieren")
        expect(chat).to_have_title("Für Kunden reservieren · stocksync")
        chat.get_by_label("Artikelnummer").fill(sku)
        chat.get_by_label("Gegend").select_option(label="Kreuzberg")
        chat.get_by_role("button", name="Suchen").click()
        row = chat.get_by_test_id("result-row").filter(has_text="Kreuzberg Store")
        expect(row).to_contain_text("0,5 km")  # numbers formatted for the language
        expect(chat.get_by_role("status").filter(has_text="Abholfiliale")).to_be_visible()

        # The switch, by keyboard: every text changes, results included, and it is kept.
        switch = chat.get_by_label("Sprache", exact=True)
        expect(switch).to_have_value("de")
        switch.focus()
        chat.keyboard.press("ArrowUp")
        expect(chat.locator("html")).to_have_attribute("lang", "en")
        expect(heading).to_have_text("Hold for a customer")
        expect(chat.get_by_label("Language", exact=True)).to_be_focused()
        expect(row).to_contain_text("0.5 km")
        expect(row.get_by_role("button", name="Hold 1 at Kreuzberg Store")).to_be_visible()
        expect(chat.get_by_role("heading", name=f"{sku} near Kreuzberg")).to_be_visible()
        assert chat.evaluate("localStorage.getItem('stocksync.lang')") == "en"
        chat.reload()
        expect(heading).to_have_text("Hold for a customer")  # remembered over the browser's

        # The store page, in the same browser, starts in the language chosen; back to German.
        staff = watch_errors(german.new_page(), errors)
        staff.goto(f"{server.url}/ui/store?location=store-a")
        sign_in(staff, server.staff_key)
        expect(staff.get_by_role("heading", level=1)).to_have_text("Store · Kreuzberg Store")
        expect(staff.get_by_text("No pickups waiting")).to_be_visible()
        staff.get_by_label("Language", exact=True).select_option("de")
        expect(staff.get_by_role("heading", level=1)).to_have_text("Filiale · Kreuzberg Store")
        expect(staff.get_by_text("Keine Abholungen offen")).to_be_visible()
        expect(staff.get_by_role("columnheader", name="Vorrätig")).to_be_visible()
        expect(staff.get_by_role("heading", name="Rücknahme")).to_be_visible()
        expect(staff.get_by_text("Nichts wartet auf Prüfung.")).to_be_visible()
        expect(staff).to_have_title("Kreuzberg Store · stocksync")
    finally:
        german.close()


def test_the_store_page_is_usable_by_keyboard(
    server: Server, context: BrowserContext, errors: list[str]
) -> None:
    staff = store_page(context, server, errors)
    staff.reload()  # the key is kept in the tab: the page starts without the sign-in form
    expect(staff.locator("#live")).to_have_attribute("data-state", "live")
    reached: list[str] = []
    for _ in range(40):  # Tab from the top through the page's controls
        staff.keyboard.press("Tab")
        focused = staff.evaluate(
            "(() => { const e = document.activeElement;"
            " return [e.id || e.getAttribute('href') || e.textContent.trim(),"
            " getComputedStyle(e).outlineStyle]; })()"
        )
        reached.append(focused[0])
        assert focused[1] != "none", f"no visible focus on {focused[0]}"
        if focused[0] == "find-order":
            break
    assert reached[0] == "#main"  # the skip link comes first
    assert {"lang", "forget-key", "#returns-h", "find-order"} <= set(reached)
    # The language switch works from the keyboard alone.
    staff.locator("#lang").focus()
    staff.keyboard.press("ArrowDown")
    expect(staff.locator("html")).to_have_attribute("lang", "de")
    expect(staff.get_by_label("Sprache", exact=True)).to_be_focused()


def test_an_online_order_comes_back_in_store_and_a_refusal_changes_nothing(
    server: Server, api: httpx.Client, context: BrowserContext, errors: list[str]
) -> None:
    # Bought online, two vases shipped from the warehouse (a location the store's key does not
    # see, so the reservation itself is hidden from it); the desk finds it by its id.
    sku = new_sku("VASE")
    put(api, f"/v1/stock/wh-north/{sku}", {"on_hand": 2})
    put(api, f"/v1/stock/store-a/{sku}", {"on_hand": 0})
    rid = pickup_order(api, sku, "wh-north", qty=2)["reservation_id"]
    post(api, f"/v1/reservations/{rid}/fulfill")
    staff = store_page(context, server, errors)
    find = staff.get_by_label("Hold code or reservation id")
    find.fill(rid)
    find.press("Enter")
    line = staff.get_by_test_id("return-line").filter(has_text=sku)
    expect(line.get_by_test_id("collected")).to_have_text("2")
    qty = line.get_by_label(re.compile(f"^Units of {sku} to return"))
    qty.fill("1")
    line.get_by_label(f"Where the returned {sku} goes").select_option(label="Back on sale")
    staff.get_by_role("button", name="Record the return").click()
    expect(staff.locator("#returns-status")).to_contain_text(f"1 \N{MULTIPLICATION SIGN} {sku}")
    expect(line.get_by_test_id("returned")).to_have_text("1")
    assert position(api, "store-a", sku)["available"] == 1  # back on sale in the store

    # Meanwhile the other vase comes back at another till: one more here would be too many.
    other = {"sku": sku, "location_id": "store-b", "qty": 1, "disposition": "restock"}
    post(api, "/v1/returns", {"return_id": f"till-{rid}", "reservation_id": rid, "lines": [other]})
    before = position(api, "store-a", sku)
    qty.fill("1")
    staff.get_by_role("button", name="Record the return").click()
    expect(staff.get_by_role("alert").filter(has_text="Return not recorded")).to_contain_text(
        "More than was collected would come back"
    )
    # The desk is done with that answer once it has refreshed and moved focus to its status
    # (pressing Enter in the search field before that could lose the key to that focus move).
    expect(staff.locator("#returns-status")).to_be_focused()
    # The browser logs the refused request; that one is expected.
    expected = [e for e in errors if "status of 409" in e and e.endswith("/v1/returns)")]
    assert len(expected) == 1, errors
    errors.remove(expected[0])
    assert position(api, "store-a", sku) == before
    ids = api.get(f"/v1/reservations/{rid}").json()["return_ids"]
    assert len(ids) == 2
    assert ids[1] == f"till-{rid}"
    # Finding the order again shows the return made elsewhere, and nothing left to return.
    find.press("Enter")
    expect(line.get_by_test_id("returned")).to_have_text("2")
    expect(line.get_by_role("spinbutton")).to_be_disabled()
