"""The staff and chat-agent pages in a real browser against a real ``stocksync serve``.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright; the browser is never
downloaded. A chat agent holds an item for a customer; the store's pick list, open in a second
page, shows it live once the order is confirmed, and staff hand it over with the keyboard.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, expect

from stocksync.store.embedded import EmbeddedRedis
from tests.support.pages import chromium, sign_in, watch_errors
from tests.support.serve import running_serve, serve_env

pytestmark = pytest.mark.slow

STORE_A = {"name": "Kreuzberg Store", "lat": 52.4990, "lon": 13.4100}  # ~0.5 km from Kreuzberg
STORE_B = {"name": "Mitte Store", "lat": 52.5219, "lon": 13.4132}  # ~2.6 km


@dataclass
class Server:
    url: str
    admin_key: str  # seeds and plays the web checkout
    agent_key: str  # chat page: read, reserve, every location
    staff_key: str  # store page: read, reserve, bound to store-a


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    deployment = serve_env(redis_server.url, tmp_path_factory.mktemp("pages"), "pages")
    admin = deployment.create_key("admin", "admin")  # first, alone: it creates the tables
    with ThreadPoolExecutor(2) as pool:  # a CLI start takes seconds: overlap them
        agent = pool.submit(deployment.create_key, "agent", "read,reserve")
        staff = pool.submit(deployment.create_key, "staff", "read,reserve", "store-a")
        keys = (admin, agent.result(), staff.result())
    with running_serve(deployment) as url:
        yield Server(url, *keys)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def seed(api: httpx.Client, sku: str) -> None:
    for location_id, place, on_hand in (("store-a", STORE_A, 3), ("store-b", STORE_B, 5)):
        body = {**place, "kind": "store", "pickup": True, "ship": False}
        r = api.put(f"/v1/locations/{location_id}", json=body)
        assert r.status_code in (200, 201), r.text
        r = api.put(f"/v1/stock/{location_id}/{sku}", json={"on_hand": on_hand})
        assert r.status_code == 200, r.text


def expect_stock(row: Locator, position: dict[str, int]) -> None:
    """The page's stock panel row shows the numbers of GET /v1/stock."""
    for name in ("on_hand", "reserved", "available"):
        cell = row.get_by_test_id("stock-" + name.replace("_", "-"))
        expect(cell).to_have_text(str(position[name]))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


STATIC = Path(__file__).resolve().parents[2] / "stocksync" / "ui" / "static"


async def test_pages_and_assets_are_served_same_origin_only(anon: httpx.AsyncClient) -> None:
    referenced: set[str] = set()
    for path, script in (("/ui/store", "store.js"), ("/ui/chat", "chat.js")):
        r = await anon.get(path)  # the pages hold no data: no key needed to load them
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        policy = r.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert f'<script type="module" src="/ui/static/{script}">' in r.text
        referenced |= set(re.findall(r"/ui/static/([\w.-]+)", r.text))
    for script in STATIC.glob("*.js"):  # ES module imports
        referenced |= set(re.findall(r'from "\./([\w.-]+)"', script.read_text()))
    assert referenced == {
        "ui.css",
        "store.js",
        "chat.js",
        "common.js",
        "i18n.js",
        "store-page.js",
        "store-risk.js",
        "store-returns.js",
        "store-inspection.js",
        "store-transfers.js",
    }
    for name in referenced:
        r = await anon.get(f"/ui/static/{name}")
        assert r.status_code == 200, name
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        assert r.headers["content-type"] == f"{kind}; charset=utf-8"
        assert r.headers["x-content-type-options"] == "nosniff"
    for missing in ("nope.js", "store.html", "..%2Frouter.py", "%2E%2E%2F__init__.py"):
        r = await anon.get(f"/ui/static/{missing}")
        assert r.status_code == 404, missing
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "not_found"


def test_chat_hold_reaches_the_store_pick_list_live(
    server: Server, browser: Browser, artifacts_dir: Path
) -> None:
    sku = "SOFA-" + uuid.uuid4().hex[:8].upper()
    errors: list[str] = []
    auth = {"Authorization": f"Bearer {server.admin_key}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=30) as api:
        seed(api, sku)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
            staff = watch_errors(context.new_page(), errors)
            chat = watch_errors(context.new_page(), errors)

            # Staff open their store's page first: the key is bound to store-a, so no choice.
            staff.goto(f"{server.url}/ui/store")
            staff.get_by_label("API key").fill("ssk_not_a_key")
            staff.keyboard.press("Enter")  # a refused key: asked again, with the reason
            expect(staff.get_by_role("alert")).to_contain_text("The API key was refused")
            errors.clear()  # the browser logs the 401 as a failed resource
            sign_in(staff, server.staff_key)
            expect(staff.get_by_role("heading", level=1)).to_have_text("Store · Kreuzberg Store")
            expect(staff.locator("#live")).to_have_attribute("data-state", "live")
            expect(staff.get_by_role("status").filter(has_text="Live")).to_be_visible()
            expect(staff.get_by_text("No pickups waiting")).to_be_visible()
            staff.evaluate("window.sameDocument = true")  # gone if the page ever reloads

            # The chat agent finds the sofa near Kreuzberg and holds one at the nearest store.
            chat.goto(f"{server.url}/ui/chat")
            sign_in(chat, server.agent_key)
            expect(chat.get_by_label("SKU")).to_be_focused()
            chat.get_by_label("SKU").fill(sku)
            chat.get_by_label("Area").select_option(label="Kreuzberg")
            expect(chat.get_by_label("Coordinates")).to_have_value("52.4986,13.4030")
            chat.get_by_label("Within (km)").fill("20")
            chat.get_by_role("button", name="Search").click()
            rows = chat.get_by_test_id("result-row")
            expect(rows).to_have_count(2)
            expect(rows.first).to_have_attribute("data-location-id", "store-a")  # nearest first
            expect(rows.first.get_by_role("rowheader")).to_have_text("Kreuzberg Store")
            expect(rows.first.get_by_test_id("available")).to_have_text("3")
            expect(rows.nth(1).get_by_test_id("available")).to_have_text("5")
            rows.first.get_by_role("button", name="Hold 1 at Kreuzberg Store").click()
            customer = chat.get_by_label("Customer reference")
            expect(customer).to_be_focused()
            expect(
                chat.get_by_text(re.compile("never a name, e-mail address or phone number"))
            ).to_be_visible()
            expect(chat.get_by_label("Hold for (hours)")).to_have_value("48")
            customer.fill("crm-4711")
            chat.get_by_role("button", name="Place hold").click()
            hold_code = chat.get_by_test_id("hold-code")
            expect(hold_code).to_have_text(re.compile(r"^[A-Z2-9]{3}-[A-Z2-9]{4}$"))
            code = hold_code.inner_text()
            rid = chat.get_by_test_id("fact-reservation-id").inner_text()
            assert rid.startswith("chat-")
            expect(rows.first.get_by_test_id("available")).to_have_text("2")  # searched again

            held = api.get(f"/v1/reservations/{rid}").json()
            assert (held["state"], held["channel"], held["customer_ref"]) == (
                "held",
                "chat",
                "crm-4711",
            )
            assert held["hold_code"] == code
            assert held["lines"] == [{"sku": sku, "location_id": "store-a", "qty": 1}]
            ttl = at(held["expires_at"]) - at(held["created_at"])
            assert abs(ttl - timedelta(hours=48)) < timedelta(minutes=1)

            chat.get_by_role("button", name="Copy code").click()
            expect(chat.get_by_text(f"Copied {code} to the clipboard.")).to_be_visible()
            assert chat.evaluate("navigator.clipboard.readText()") == code
            chat.get_by_role("button", name="Extend +24 h").click()
            expect(chat.get_by_text("Extended by 24 hours.")).to_be_visible()
            extended = api.get(f"/v1/reservations/{rid}").json()
            ttl = at(extended["expires_at"]) - at(held["created_at"])
            assert abs(ttl - timedelta(hours=72)) < timedelta(minutes=1)
            chat.screenshot(path=artifacts_dir / "chat-page.png", full_page=True)

            # A held item is not on the pick list yet; the web checkout confirms the order ...
            staff.bring_to_front()  # (a background tab's timers and frames are throttled)
            expect(staff.get_by_test_id("pickup")).to_have_count(0)
            r = api.post(f"/v1/reservations/{rid}/confirm", json={"pickup_within_seconds": 7200})
            assert r.status_code == 200, r.text
            deadline = at(r.json()["expires_at"])

            # ... and it appears on the open store page by itself, without a reload.
            card = staff.get_by_test_id("pickup").filter(has_text=code)
            expect(card).to_be_visible()
            assert staff.evaluate("window.sameDocument") is True
            expect(card.get_by_test_id("pickup-state")).to_have_text("To pick")
            expect(card).to_contain_text("Customer crm-4711")
            expect(card.get_by_role("listitem")).to_have_text(f"1 \N{MULTIPLICATION SIGN} {sku}")
            shown = at(card.locator("time").get_attribute("datetime") or "")
            assert abs(shown - deadline) < timedelta(seconds=1)
            stock = staff.get_by_test_id(f"stock-row-{sku}")
            expect(stock.get_by_test_id("stock-on-hand")).to_have_text("3")
            expect(stock.get_by_test_id("stock-reserved")).to_have_text("1")
            expect(stock.get_by_test_id("stock-available")).to_have_text("2")

            # Staff pick it; focus moves on to the next step, so the keyboard finishes the job.
            card.get_by_role("button", name=f"Picked — ready ({code})").click()
            expect(card.get_by_test_id("pickup-state")).to_have_text("Ready for collection")
            assert api.get(f"/v1/reservations/{rid}").json()["state"] == "ready"
            collected = card.get_by_role("button", name=f"Collected ({code})")
            expect(collected).to_be_focused()
            staff.screenshot(path=artifacts_dir / "store-page.png", full_page=True)
            staff.keyboard.press("Enter")
            expect(card).to_have_count(0)
            expect(staff.get_by_role("heading", name="Pick list")).to_be_focused()
            assert api.get(f"/v1/reservations/{rid}").json()["state"] == "fulfilled"

            position = api.get(f"/v1/stock/store-a/{sku}").json()
            assert (position["on_hand"], position["reserved"], position["available"]) == (2, 0, 2)
            expect_stock(stock, position)
            assert staff.evaluate("window.sameDocument") is True
            staff.screenshot(path=artifacts_dir / "store-page-collected.png", full_page=True)

            # A second order; then the till sells both units left: that order is at risk.
            other = {
                "reservation_id": f"web-{uuid.uuid4().hex[:12]}",
                "channel": "web",
                "customer_ref": "crm-0815",
                "lines": [{"sku": sku, "location_id": "store-a", "qty": 1}],
            }
            assert api.post("/v1/reservations", json=other).status_code == 201
            r = api.post(f"/v1/reservations/{other['reservation_id']}/confirm", json={})
            assert r.status_code == 200, r.text
            second = staff.get_by_test_id("pickup").filter(has_text="crm-0815")
            expect(second).to_be_visible()
            sale = {"delta": -2, "reason": "sale", "source": "pos", "source_event_id": rid + "-t"}
            r = api.post(f"/v1/stock/store-a/{sku}/adjustments", json=sale)
            assert r.status_code == 200, r.text
            warning = staff.get_by_test_id("at-risk").filter(has_text="crm-0815")
            expect(warning).to_be_visible()
            expect(
                staff.get_by_role("heading", name=re.compile("1 reservation at risk"))
            ).to_be_visible()
            expect(second).to_contain_text("At risk")
            position = api.get(f"/v1/stock/store-a/{sku}").json()
            assert (position["on_hand"], position["reserved"], position["available"]) == (0, 1, 0)
            expect_stock(stock, position)
            staff.screenshot(path=artifacts_dir / "store-page-at-risk.png", full_page=True)

            # No-show asks first: Escape keeps the pickup, the confirm button releases it.
            no_show = second.get_by_role("button", name=re.compile("^No-show"))
            no_show.click()
            dialog = staff.get_by_role("dialog", name="Release as a no-show?")
            expect(dialog).to_be_visible()
            expect(dialog.get_by_role("button", name="Keep the pickup")).to_be_focused()
            staff.keyboard.press("Escape")
            expect(dialog).to_be_hidden()
            expect(no_show).to_be_focused()
            no_show.click()
            dialog.get_by_role("button", name="Release the hold").click()
            expect(second).to_have_count(0)
            expect(warning).to_have_count(0)
            state = api.get(f"/v1/reservations/{other['reservation_id']}").json()["state"]
            assert state == "released"
            expect_stock(stock, api.get(f"/v1/stock/store-a/{sku}").json())
            assert staff.evaluate("window.sameDocument") is True
        finally:
            context.close()
    assert errors == [], "\n".join(errors)
