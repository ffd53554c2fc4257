"""Load test: an omnichannel mix of clients against the stocksync HTTP API.

Run (see loadtests/README.md)::

    export STOCKSYNC_API_KEY=$(cat .stocksync/demo-key)     # after `stocksync serve --demo`
    export STOCKSYNC_LOAD_SKUS=SOFA-VELVET-GREEN,CHAIR-OAK,...
    locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:8000

Environment:

``STOCKSYNC_API_KEY``
    Sent as ``Authorization: Bearer <key>`` on every request; scopes read, reserve and
    stock:write (the demo's admin key will do). Required.
``STOCKSYNC_LOAD_SKUS``
    Comma-separated SKUs to exercise, most popular first: traffic is skewed towards the head of
    the list (Zipf-like), so the first SKUs see contention for their last units. Required; there
    is no endpoint that lists SKUs. The demo data set (``stocksync serve --demo``) has 32
    (``SOFA-VELVET-GREEN`` and so on; see the README); all of them, from a checkout::

        python -c "from stocksync.cli.demo import PRODUCTS; print(','.join(PRODUCTS))"

    ``stocksync stock show SKU`` shows one SKU's stock at every location.

Locations come from ``GET /v1/locations`` when the first user starts: online orders go to
``ship`` locations, chat holds to ``pickup`` locations and tills to stores.

Users, by weight:

- ``WebShopper`` (6): reads availability of one or two SKUs, reserves a cart at ship locations
  (``ttl_seconds`` 900, channel ``web`` or ``app``), then confirms and fulfils it (30%),
  releases it (50%) or abandons it and lets the hold expire (20%).
- ``ChatAgent`` (1): holds one unit at a pickup store for two days with a ``customer_ref``,
  later confirms it with a pickup deadline, marks it ready and fulfils it at pickup.
- ``StoreTill`` (2): point-of-sale sales (delta -1, reason ``sale``, source ``pos``, a unique
  ``source_event_id`` each) at one store, and occasional stock reads. A till only sells what it
  believes is on the shelf, so long runs do not drive ``on_hand`` far below zero.
- ``AvailabilityReader`` (4): product pages and marketplace feeds reading availability.
- ``WarehouseCounter`` (1): cycle counts at warehouses (``PUT /v1/stock/...`` with ``as_of``,
  source ``wms``), now and then one unit short.

The run exits with code 1 when more than 1 % of requests failed or the p95 of all requests is
over ``STOCKSYNC_LOAD_P95_MS`` (default 250 ms).

Requests are named by route (``/v1/reservations/{id}/confirm``) so the statistics group by
route. A ``409 insufficient_stock`` answer to a reservation is an expected business outcome, not
a failure; every other non-2xx answer is a failure. Business outcomes (sold out, abandoned, ...)
are counted per process and logged when the test stops.

Abandoned holds stay reserved for 15 minutes after the run, and sales and fulfilments lower
``on_hand``: restart the demo (or recount the stock) between runs that should be comparable.
"""

from __future__ import annotations

import logging
import os
import random
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import gevent
from gevent.lock import Semaphore
from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser

logger = logging.getLogger("stocksync.loadtest")

WEB_TTL_SECONDS = 900
CHAT_TTL_SECONDS = 2 * 24 * 3600
PICKUP_WITHIN_SECONDS = 3 * 24 * 3600
STOP_GRACE_SECONDS = 30
MAX_FAIL_RATIO = 0.01
DEFAULT_P95_MS = 250  # STOCKSYNC_LOAD_P95_MS overrides; see loadtests/README.md

OUTCOMES: Counter[str] = Counter()
"""Business outcomes in this process (sold out, abandoned, ...), logged at test stop."""

SHELF: dict[tuple[str, str], int] = {}
"""What the tills of this process believe is on the shelf: (location_id, sku) -> on_hand."""

Json = Any


@dataclass(frozen=True)
class Catalog:
    skus: list[str]
    sku_weights: list[float]
    ship: list[str]
    pickup: list[str]
    stores: list[str]
    warehouses: list[str]

    def pick_skus(self, count: int) -> list[str]:
        """``count`` distinct SKUs (fewer if the catalog is smaller), popular ones more often."""
        chosen: list[str] = []
        while len(chosen) < min(count, len(self.skus)):
            sku = random.choices(self.skus, weights=self.sku_weights)[0]
            if sku not in chosen:
                chosen.append(sku)
        return chosen

    def pick_sku(self) -> str:
        return self.pick_skus(1)[0]


_catalog: Catalog | None = None
_catalog_lock = Semaphore()
_stop_reason: str | None = None


def skus_from_env() -> list[str]:
    raw = os.environ.get("STOCKSYNC_LOAD_SKUS", "")
    return list(dict.fromkeys(s.strip() for s in raw.split(",") if s.strip()))


def location_items(payload: Json) -> list[dict[str, Any]]:
    """The list of locations from ``GET /v1/locations`` (a bare list or wrapped in an object)."""
    if isinstance(payload, dict):
        for key in ("locations", "items", "data"):
            if isinstance(payload.get(key), list):
                payload = payload[key]
                break
    if not isinstance(payload, list):
        raise ValueError(f"unexpected /v1/locations body: {str(payload)[:200]}")
    return [item for item in payload if isinstance(item, dict) and "location_id" in item]


def ids_where(locations: Iterable[dict[str, Any]], flag: str) -> list[str]:
    return [str(loc["location_id"]) for loc in locations if loc.get(flag)]


def build_catalog(skus: Sequence[str], locations: list[dict[str, Any]]) -> Catalog:
    every = [str(loc["location_id"]) for loc in locations]
    stores = [str(loc["location_id"]) for loc in locations if loc.get("kind") == "store"]
    groups = {"ship": ids_where(locations, "ship"), "pickup": ids_where(locations, "pickup")}
    for name, ids in groups.items():
        if not ids:
            logger.warning("no location has %s=true; using every location for it", name)
            groups[name] = every
    if not stores:
        logger.warning("no location has kind=store; tills use every location")
        stores = every
    warehouses = [str(loc["location_id"]) for loc in locations if loc.get("kind") == "warehouse"]
    if not warehouses:
        logger.warning("no location has kind=warehouse; counts go to every location")
        warehouses = every
    return Catalog(
        skus=list(skus),
        sku_weights=[1.0 / (rank + 1) for rank in range(len(skus))],
        ship=groups["ship"],
        pickup=groups["pickup"],
        stores=stores,
        warehouses=warehouses,
    )


def json_body(response: Any) -> Json:
    try:
        return response.json()
    except ValueError:
        return None


def problem_code(body: Json) -> str | None:
    return str(body["code"]) if isinstance(body, dict) and "code" in body else None


class StockSyncUser(HttpUser):
    """Common set-up: the API key, the shared catalog, and request helpers named by route."""

    abstract = True
    host = "http://127.0.0.1:8000"

    def on_start(self) -> None:
        key = os.environ.get("STOCKSYNC_API_KEY", "").strip()
        if not key:
            self.stop_test("STOCKSYNC_API_KEY is not set (a key with read, reserve, stock:write)")
        self.client.headers["Authorization"] = f"Bearer {key}"
        self.catalog = self.load_catalog()

    def think(self) -> None:
        """Pause between the steps of one customer journey (this user's ``wait_time``)."""
        self.wait()  # type: ignore[no-untyped-call]  # locust's User.wait has no annotations

    def stop_test(self, message: str) -> NoReturn:
        """End the whole run with exit code 1, from on_start.

        Locust swallows a StopTest raised in on_start, and a user that quits the runner from its
        own greenlet is killed half-way through stopping the others; so a separate greenlet
        stops the runner, and this user waits to be stopped with the rest.
        """
        global _stop_reason
        runner = self.environment.runner
        if _stop_reason is None:
            _stop_reason = message
            logger.error("stopping the load test: %s", message)
            self.environment.process_exit_code = 1
            if runner is not None:
                options = self.environment.parsed_options
                headless = options is not None and bool(options.headless)
                # Headless: end the process. Web UI: stop the users, keep the UI up.
                gevent.spawn(runner.quit if headless else runner.stop)
        if runner is not None:
            gevent.sleep(STOP_GRACE_SECONDS)  # the runner kills this greenlet well before
        raise StopUser()

    def load_catalog(self) -> Catalog:
        """The catalog, fetched by the first user to start; the run stops if that fails."""
        global _catalog
        failure = None
        with _catalog_lock:  # the others wait for the first user's request
            if _catalog is None and _stop_reason is None:
                result = self.fetch_catalog()
                if isinstance(result, Catalog):
                    _catalog = result
                else:
                    failure = result
        if _catalog is None:
            self.stop_test(failure or _stop_reason or "no catalog")
        return _catalog

    def fetch_catalog(self) -> Catalog | str:
        """A catalog from the environment and ``GET /v1/locations``, or why there is none."""
        skus = skus_from_env()
        if not skus:
            return (
                "STOCKSYNC_LOAD_SKUS is not set: give the SKUs to exercise, comma separated "
                "(for the demo data, see the docstring of loadtests/locustfile.py)"
            )
        status, body = self.call("GET", "/v1/locations", name="/v1/locations")
        if status != 200:
            answer = f"answered {status}" if status else "could not connect"
            return f"GET {self.host}/v1/locations {answer}; cannot start"
        try:
            locations = location_items(body)
        except ValueError as exc:
            return str(exc)
        if not locations:
            return "GET /v1/locations returned no locations; load the data first"
        catalog = build_catalog(skus, locations)
        logger.info(
            "catalog: %d SKUs, ship=%s pickup=%s stores=%s",
            len(skus),
            catalog.ship,
            catalog.pickup,
            catalog.stores,
        )
        return catalog

    def call(
        self,
        method: str,
        path: str,
        *,
        name: str,
        json: Json = None,
        params: dict[str, str] | None = None,
        tolerate: Iterable[tuple[int, str]] = (),
    ) -> tuple[int, Json]:
        """One request, reported under ``name``; any 2xx is a success, and so is a problem
        answer whose (status, code) is in ``tolerate``. Returns (status, parsed body)."""
        with self.client.request(
            method, path, name=name, json=json, params=params, catch_response=True
        ) as response:
            status = response.status_code
            body = json_body(response)
            code = problem_code(body)
            if 200 <= status < 300 or (status, code) in set(tolerate):
                response.success()
            else:
                detail = code or (response.text or "")[:200] or str(response.error)
                response.failure(f"{status} {detail}")
            return status, body

    def availability(self, sku: str) -> list[dict[str, Any]]:
        status, body = self.call(
            "GET", "/v1/availability", name="/v1/availability", params={"sku": sku}
        )
        if status != 200 or not isinstance(body, dict):
            return []
        locations = body.get("locations")
        return [loc for loc in locations if isinstance(loc, dict)] if locations else []

    def offers(self, sku: str, allowed: Sequence[str]) -> list[dict[str, Any]]:
        """Locations among ``allowed`` where ``sku`` is available, with their availability."""
        return [
            loc
            for loc in self.availability(sku)
            if loc.get("location_id") in allowed and int(loc.get("available") or 0) > 0
        ]

    def reserve(
        self,
        channel: str,
        lines: list[dict[str, Any]],
        ttl_seconds: int,
        customer_ref: str | None = None,
    ) -> str | None:
        """The reservation id when held, None when stock ran out (or the request failed)."""
        reservation_id = str(uuid.uuid4())
        body: dict[str, Any] = {
            "reservation_id": reservation_id,
            "channel": channel,
            "lines": lines,
            "ttl_seconds": ttl_seconds,
        }
        if customer_ref is not None:
            body["customer_ref"] = customer_ref
        status, answer = self.call(
            "POST",
            "/v1/reservations",
            name="/v1/reservations",
            json=body,
            tolerate=[(409, "insufficient_stock")],
        )
        if status == 409 and problem_code(answer) == "insufficient_stock":
            OUTCOMES[f"{channel}: insufficient_stock"] += 1
            return None
        if status not in (200, 201):
            return None
        OUTCOMES[f"{channel}: held"] += 1
        return reservation_id

    def transition(self, reservation_id: str, action: str, body: dict[str, Any]) -> bool:
        status, _ = self.call(
            "POST",
            f"/v1/reservations/{reservation_id}/{action}",
            name=f"/v1/reservations/{{id}}/{action}",
            json=body,
        )
        return 200 <= status < 300


class WebShopper(StockSyncUser):
    """Web shop and app: browse, reserve a cart for 15 minutes, then check out or not."""

    weight = 6
    wait_time = between(2, 8)

    @task
    def shop(self) -> None:
        channel = random.choices(("web", "app"), weights=(7, 3))[0]
        lines: list[dict[str, Any]] = []
        for sku in self.catalog.pick_skus(random.choice((1, 1, 2))):
            offers = self.offers(sku, self.catalog.ship)
            if not offers:
                OUTCOMES[f"{channel}: sold out on the product page"] += 1
                continue
            offer = random.choice(offers)
            qty = 2 if int(offer["available"]) >= 2 and random.random() < 0.1 else 1
            lines.append({"sku": sku, "location_id": offer["location_id"], "qty": qty})
        if not lines:
            return
        reservation_id = self.reserve(channel, lines, WEB_TTL_SECONDS)
        if reservation_id is None:
            return

        self.think()  # the shopper goes through checkout, or wanders off
        roll = random.random()
        if roll < 0.3:
            if self.transition(reservation_id, "confirm", {}):
                self.think()  # the warehouse picks and ships the order
                if self.transition(reservation_id, "fulfill", {}):
                    OUTCOMES[f"{channel}: fulfilled"] += 1
        elif roll < 0.8:
            if self.transition(reservation_id, "release", {}):
                OUTCOMES[f"{channel}: released"] += 1
        else:
            OUTCOMES[f"{channel}: abandoned (left to expire)"] += 1


class ChatAgent(StockSyncUser):
    """A chat or phone agent holding an item at a store for a customer to pick up."""

    weight = 1
    wait_time = between(5, 15)

    @task
    def hold_for_pickup(self) -> None:
        sku = self.catalog.pick_sku()
        offers = self.offers(sku, self.catalog.pickup)
        if not offers:
            OUTCOMES["chat: nothing to hold nearby"] += 1
            return
        offer = random.choice(offers)
        reservation_id = self.reserve(
            "chat",
            [{"sku": sku, "location_id": offer["location_id"], "qty": 1}],
            CHAT_TTL_SECONDS,
            customer_ref=f"chat-ticket-{uuid.uuid4().hex[:12]}",
        )
        if reservation_id is None:
            return
        self.think()  # the customer decides to buy
        if not self.transition(
            reservation_id, "confirm", {"pickup_within_seconds": PICKUP_WITHIN_SECONDS}
        ):
            return
        self.think()  # the store picks the item and sets it aside
        if not self.transition(reservation_id, "ready", {}):
            return
        self.think()  # the customer collects it
        if self.transition(reservation_id, "fulfill", {}):
            OUTCOMES["chat: picked up"] += 1


class StoreTill(StockSyncUser):
    """A point-of-sale till in one store: walk-in sales and the odd stock look-up."""

    weight = 2
    wait_time = between(1, 4)

    def on_start(self) -> None:
        super().on_start()
        self.location_id = random.choice(self.catalog.stores)
        self.till_id = f"till-{self.location_id}-{uuid.uuid4().hex[:6]}"

    def read_stock(self, sku: str) -> int | None:
        """on_hand at this store (0 when the store does not carry the SKU); None on error."""
        status, body = self.call(
            "GET", f"/v1/stock/{self.location_id}/{sku}", name="/v1/stock/{location_id}/{sku}"
        )
        if status != 200 or not isinstance(body, dict) or "on_hand" not in body:
            return None
        on_hand = int(body["on_hand"])
        SHELF[(self.location_id, sku)] = on_hand
        return on_hand

    @task(5)
    def sell(self) -> None:
        sku = self.catalog.pick_sku()
        on_shelf = SHELF.get((self.location_id, sku))
        if on_shelf is None:
            on_shelf = self.read_stock(sku)
        if on_shelf is None or on_shelf <= 0:
            OUTCOMES["pos: not on the shelf"] += 1
            return
        status, _ = self.call(
            "POST",
            f"/v1/stock/{self.location_id}/{sku}/adjustments",
            name="/v1/stock/{location_id}/{sku}/adjustments",
            json={
                "delta": -1,
                "reason": "sale",
                "source": "pos",
                "source_event_id": f"{self.till_id}-{uuid.uuid4().hex}",
                "occurred_at": datetime.now(UTC).isoformat(),
            },
        )
        if 200 <= status < 300:
            SHELF[(self.location_id, sku)] = on_shelf - 1
            OUTCOMES["pos: sold"] += 1

    @task(1)
    def stock_check(self) -> None:
        self.read_stock(self.catalog.pick_sku())


class AvailabilityReader(StockSyncUser):
    """Product pages, marketplace feeds and store apps asking how many are available."""

    weight = 4
    wait_time = between(0.5, 2)

    @task
    def read(self) -> None:
        self.availability(self.catalog.pick_sku())


class WarehouseCounter(StockSyncUser):
    """A warehouse system's cycle counts: an absolute count of one bin, taken now.

    The count is what the system shows, now and then one off (a miscount or shrinkage), sent
    with ``as_of`` so sales in flight are not lost (DESIGN rule 7).
    """

    weight = 1
    wait_time = between(2, 6)

    @task
    def count(self) -> None:
        location_id = random.choice(self.catalog.warehouses)
        sku = self.catalog.pick_sku()
        path = f"/v1/stock/{location_id}/{sku}"
        status, body = self.call("GET", path, name="/v1/stock/{location_id}/{sku}")
        if status != 200 or not isinstance(body, dict) or "on_hand" not in body:
            return
        counted = max(0, int(body["on_hand"]) - (1 if random.random() < 0.1 else 0))
        status, _ = self.call(
            "PUT",
            path,
            name="/v1/stock/{location_id}/{sku} (count)",
            json={
                "on_hand": counted,
                "as_of": datetime.now(UTC).isoformat(),
                "source": "wms",
                "source_event_id": f"count-{uuid.uuid4().hex}",
            },
        )
        if 200 <= status < 300:
            OUTCOMES["wms: counted"] += 1


def quality_gate(environment: Environment, **_kwargs: Any) -> None:
    """Exit code 1 when more than MAX_FAIL_RATIO of requests failed or p95 is over budget."""
    total = environment.stats.total
    p95_budget = float(os.environ.get("STOCKSYNC_LOAD_P95_MS", DEFAULT_P95_MS))
    p95 = total.get_response_time_percentile(0.95) or 0.0
    if total.num_requests == 0:
        return
    if total.fail_ratio > MAX_FAIL_RATIO:
        logger.error("failed: %.2f %% of requests failed", 100 * total.fail_ratio)
        environment.process_exit_code = 1
    if p95 > p95_budget:
        logger.error("failed: p95 %g ms over the %g ms budget", p95, p95_budget)
        environment.process_exit_code = 1


def reset(environment: Environment, **_kwargs: Any) -> None:
    """A fresh catalog and fresh counts for each run (the web UI can start several)."""
    global _catalog, _stop_reason
    _catalog, _stop_reason = None, None
    OUTCOMES.clear()
    SHELF.clear()


def log_outcomes(environment: Environment, **_kwargs: Any) -> None:
    if OUTCOMES:
        summary = ", ".join(f"{name}={count}" for name, count in sorted(OUTCOMES.items()))
        logger.info("business outcomes: %s", summary)


events.test_start.add_listener(reset)  # type: ignore[no-untyped-call]
events.test_stop.add_listener(log_outcomes)  # type: ignore[no-untyped-call]
events.quitting.add_listener(quality_gate)  # type: ignore[no-untyped-call]
