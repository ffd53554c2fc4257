"""Shopify's GraphQL Admin API: read ``available`` at inventory levels, set it with
compare-and-set. The only module of this connector that talks to the network.

Every query is sized before it is sent so that its requested cost (``cost.py``) stays within
Shopify's single-query limit, and paced by the cost bucket Shopify reports (``throttle.py``).
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Self

import anyio
import httpx

from connectors.framework.retry import Backoff, with_retries
from connectors.shopify.cost import MUTATION_COST, items_per_read, levels_per_item, levels_read_cost
from connectors.shopify.throttle import Pacer, query_cost

log = logging.getLogger(__name__)

STALE_CODES = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})
# InventorySetQuantitiesUserErrorCode (https://shopify.dev/docs/api/admin-graphql/2026-04/enums/
# InventorySetQuantitiesUserErrorCode): "This request is currently in progress, please try
# again." -- what a network retry of a request still running gets: same key, after a pause.
CONCURRENT_REQUEST = "IDEMPOTENCY_CONCURRENT_REQUEST"
# "A previous request with this idempotency key failed. Retry with a new idempotency key."
PREVIOUS_ATTEMPT_FAILED = "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"
MAX_SPLITS = 64  # smaller queries one read may fall back to after MAX_COST_EXCEEDED answers
MAX_LEVEL_PAGES = 100  # inventoryLevels pages per item (Shopify pages at most 25,000 objects)

LEVELS_QUERY = """
query StocksyncAvailable($ids: [ID!]!, $first: Int!, $after: String) {
  nodes(ids: $ids) {
    ... on InventoryItem {
      id
      inventoryLevels(first: $first, after: $after) {
        nodes { location { id } quantities(names: ["available"]) { name quantity } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}
"""

SET_MUTATION = """
mutation StocksyncSetAvailable($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { reason referenceDocumentUri }
    userErrors { code field message }
  }
}
"""


class ShopifyError(Exception):
    """Shopify refused a request for a reason a retry will not fix."""


class CostExceeded(ShopifyError):
    """``MAX_COST_EXCEEDED``: the query's requested cost is over the single-query limit."""

    def __init__(self, message: str, cost: int | None, max_cost: int | None) -> None:
        super().__init__(message)
        self.cost = cost
        self.max_cost = max_cost


class ShopifyBusy(Exception):
    """Shopify kept answering "try again" (idempotency) past our attempts: nothing was refused,
    so the caller retries later (a push leaves its outbox entries pending)."""


@dataclass(frozen=True)
class SetQuantity:
    item_id: str
    location_id: str
    quantity: int
    change_from: int | None  # the value we believe Shopify holds (compare-and-set)


@dataclass(frozen=True)
class UserError:
    code: str
    field: tuple[str, ...]
    message: str

    @property
    def stale(self) -> bool:
        return self.code in STALE_CODES


@dataclass(frozen=True)
class _Page:
    """One levels read: these items, ``first`` levels each, after ``after`` (one item only)."""

    ids: tuple[str, ...]
    first: int
    after: str | None = None
    page: int = 1
    scale: float = 1.0  # Shopify's count over ours, once a MAX_COST_EXCEEDED told us

    def cost(self) -> int:
        return math.ceil(levels_read_cost(len(self.ids), self.first) * self.scale)


def _throttled(request: httpx.Request, body: Any) -> httpx.HTTPStatusError:
    # GraphQL answers a throttled call with errors[].extensions.code THROTTLED: once our waits
    # are used up, surface it as the 429 it means, so callers treat it as transient.
    response = httpx.Response(429, json=body, request=request)
    return httpx.HTTPStatusError(
        "Shopify throttled the request", request=request, response=response
    )


def _codes(body: dict[str, Any]) -> set[str]:
    errors = body.get("errors") or []
    if not isinstance(errors, list):
        return set()
    return {str((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)}


class ShopifyClient:
    """``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``."""

    def __init__(
        self,
        shop_url: str,
        api_version: str,
        access_token: str,
        *,
        timeout: float = 10.0,
        backoff: Backoff | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.api_version = api_version
        self.path = f"/admin/api/{api_version}/graphql.json"
        self.backoff = backoff or Backoff()
        self.pacer = pacer or Pacer()
        self.http = httpx.AsyncClient(
            base_url=shop_url.rstrip("/"),
            headers={"X-Shopify-Access-Token": access_token},
            timeout=timeout,
        )
        self.throttled = 0  # THROTTLED answers received (for tests and benchmarks)
        self._warned_version: str | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.http.aclose()

    async def _post(self, query: str, variables: dict[str, Any]) -> httpx.Response:
        response = await self.http.post(self.path, json={"query": query, "variables": variables})
        if response.status_code == 429 and "THROTTLED" in _codes(_json(response)):
            return response  # a GraphQL THROTTLED answer with its bucket status: graphql() waits
        response.raise_for_status()
        served = response.headers.get("X-Shopify-API-Version")
        if served and served != self.api_version and served != self._warned_version:
            # Shopify falls forward to a newer version when the requested one is no longer
            # served (https://shopify.dev/docs/api/usage/versioning): say so once.
            log.warning("shopify: asked for API %s, served %s", self.api_version, served)
            self._warned_version = served
        return response

    def _pause(self, attempt: int) -> float:
        ceiling = min(self.backoff.cap_seconds, self.backoff.base_seconds * 2**attempt)
        return random.uniform(0, ceiling)

    async def graphql(self, query: str, variables: dict[str, Any], cost: int) -> dict[str, Any]:
        """The ``data`` of one GraphQL call whose requested cost is ``cost``: paced by the
        bucket, retried on throttling (waiting for the points it lacks), 5xx and network
        trouble, all bounded by the retry policy's attempts."""
        for attempt in range(self.backoff.attempts):
            await self.pacer.admit(cost)
            response = await with_retries(lambda: self._post(query, variables), self.backoff)
            body: dict[str, Any] = response.json()
            spent = query_cost(body)
            self.pacer.observe(spent.throttle if spent else None)
            codes = _codes(body)
            if "THROTTLED" in codes:
                self.throttled += 1
                if spent and spent.requested:  # wait for Shopify's count, should it differ
                    cost = max(cost, spent.requested)
                if attempt + 1 == self.backoff.attempts:
                    raise _throttled(response.request, body)
                if self.pacer.status is None:  # no bucket to wait for: back off instead
                    await anyio.sleep(self._pause(attempt))
                continue  # admit() now waits for the points the bucket lacks
            errors = body.get("errors")
            if "MAX_COST_EXCEEDED" in codes:
                ext = next(
                    e.get("extensions") or {}
                    for e in body["errors"]
                    if (e.get("extensions") or {}).get("code") == "MAX_COST_EXCEEDED"
                )
                raise CostExceeded(
                    f"requested cost {cost} by our count, {ext.get('cost')} by Shopify's "
                    f"(limit {ext.get('maxCost')})",
                    _int_or_none(ext.get("cost")),
                    _int_or_none(ext.get("maxCost")),
                )
            if errors:
                messages = (
                    [e.get("message") for e in errors] if isinstance(errors, list) else errors
                )
                raise ShopifyError(f"GraphQL errors: {messages}")
            data: dict[str, Any] = body.get("data") or {}
            return data
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- reading levels ---------------------------------------------------------------------

    async def available(
        self, item_ids: Iterable[str], levels_hint: int = 10
    ) -> dict[tuple[str, str], int]:
        """(inventory item GID, location GID) -> ``available``, for every stocked level.

        Items are read in batches whose requested cost fits one query, each asking for
        ``levels_hint`` levels per item (the number of locations we expect them at); items
        stocked at more locations are paged on with their cursor. A ``MAX_COST_EXCEEDED``
        answer splits the batch (then the page) and tries again, at most ``MAX_SPLITS`` times.
        """
        ids = sorted(set(item_ids))
        budget = self.pacer.budget()
        first = max(1, min(levels_hint, levels_per_item(budget)))
        per_read = max(1, items_per_read(first, budget))
        batches = (tuple(ids[i : i + per_read]) for i in range(0, len(ids), per_read))
        queue = deque(_Page(batch, first) for batch in batches)
        found: dict[tuple[str, str], int] = {}
        follow_first = levels_per_item(budget)  # levels per page when paging one item on
        splits = 0
        while queue:
            page = queue.popleft()
            try:
                nodes = await self._levels(page)
            except CostExceeded as exc:
                splits += 1
                if splits > MAX_SPLITS:
                    raise ShopifyError(
                        f"levels read still too costly after {MAX_SPLITS} splits"
                    ) from exc
                smaller = _split(page, exc)
                if len(page.ids) == 1:  # a page of one item was too costly: page on smaller
                    follow_first = min(follow_first, smaller[0].first)
                queue.extendleft(reversed(smaller))
                continue
            for node in nodes:
                if not node:
                    continue  # an id Shopify does not know (deleted item): nothing stocked
                connection = node.get("inventoryLevels") or {}
                for level in connection.get("nodes") or []:
                    for q in level.get("quantities") or []:
                        if q.get("name") == "available":
                            found[(node["id"], level["location"]["id"])] = int(q["quantity"])
                info = connection.get("pageInfo") or {}
                if info.get("hasNextPage"):
                    if page.page >= MAX_LEVEL_PAGES:
                        raise ShopifyError(f"{node['id']}: over {MAX_LEVEL_PAGES} level pages")
                    cursor = info.get("endCursor")
                    queue.append(
                        _Page((node["id"],), follow_first, cursor, page.page + 1, page.scale)
                    )
        return found

    async def _levels(self, page: _Page) -> list[dict[str, Any] | None]:
        variables = {"ids": list(page.ids), "first": page.first, "after": page.after}
        data = await self.graphql(LEVELS_QUERY, variables, page.cost())
        nodes: list[dict[str, Any] | None] = data.get("nodes") or []
        return nodes

    # -- setting levels ---------------------------------------------------------------------

    async def set_available(
        self, quantities: Sequence[SetQuantity], reference: str
    ) -> list[UserError]:
        """``inventorySetQuantities`` (name ``available``, reason ``correction``) with
        ``changeFromQuantity`` per level; returns the user errors (empty: all set).

        One idempotency key per push, reused by its transport retries and by retries after
        ``IDEMPOTENCY_CONCURRENT_REQUEST`` (so Shopify applies it once); a new key after
        ``IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED``, as Shopify asks. Raises :class:`ShopifyBusy`
        when those answers outlast the retry policy's attempts.
        """
        payload: dict[str, Any] = {
            "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": reference,
                "quantities": [
                    {
                        "inventoryItemId": q.item_id,
                        "locationId": q.location_id,
                        "quantity": q.quantity,
                        "changeFromQuantity": q.change_from,
                    }
                    for q in quantities
                ],
            },
            "key": str(uuid.uuid4()),
        }
        for attempt in range(self.backoff.attempts):
            data = await self.graphql(SET_MUTATION, payload, MUTATION_COST)
            result = data.get("inventorySetQuantities") or {}
            errors = [
                UserError(str(e.get("code") or ""), tuple(e.get("field") or ()), str(e["message"]))
                for e in result.get("userErrors") or []
            ]
            codes = {e.code for e in errors}
            if CONCURRENT_REQUEST in codes:
                await anyio.sleep(self._pause(attempt))  # the first request is still running
                continue
            if PREVIOUS_ATTEMPT_FAILED in codes:
                payload = {**payload, "key": str(uuid.uuid4())}
                continue
            return errors
        raise ShopifyBusy(
            f"inventorySetQuantities still answered {CONCURRENT_REQUEST} or "
            f"{PREVIOUS_ATTEMPT_FAILED} after {self.backoff.attempts} attempts"
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _split(page: _Page, exc: CostExceeded) -> list[_Page]:
    """Smaller reads covering ``page``: half the items, else half the levels per item."""
    if exc.cost:  # pace the smaller reads by Shopify's count, not ours
        page = replace(page, scale=max(page.scale, exc.cost / max(1, page.cost() / page.scale)))
    if len(page.ids) > 1:
        half = len(page.ids) // 2
        if exc.cost and exc.max_cost and exc.cost > exc.max_cost:
            # Shopify said how far over it was: shrink by that much at once (never below half)
            half = max(1, min(half, len(page.ids) * exc.max_cost // exc.cost))
        return [replace(page, ids=page.ids[i : i + half]) for i in range(0, len(page.ids), half)]
    if page.first > 1:
        return [replace(page, first=page.first // 2)]
    raise ShopifyError(f"one level of {page.ids[0]} is over Shopify's cost limit: {exc}") from exc
