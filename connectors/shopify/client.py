"""Shopify's GraphQL Admin API: read ``available`` at inventory levels, set it with
compare-and-set. The only module of this connector that talks to the network."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from connectors.framework.retry import Backoff, with_retries

STALE_CODES = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})
LEVELS_PAGE = 50  # inventory items per read

LEVELS_QUERY = """
query StocksyncAvailable($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on InventoryItem {
      id
      inventoryLevels(first: 250) {
        nodes { location { id } quantities(names: ["available"]) { name quantity } }
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


def _throttled(request: httpx.Request, body: Any) -> httpx.HTTPStatusError:
    # GraphQL answers a throttled call 200 with errors[].extensions.code THROTTLED: surface it
    # as the 429 it means, so the shared retry policy backs off.
    response = httpx.Response(429, json=body, request=request)
    return httpx.HTTPStatusError(
        "Shopify throttled the request", request=request, response=response
    )


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
    ) -> None:
        self.path = f"/admin/api/{api_version}/graphql.json"
        self.backoff = backoff or Backoff()
        self.http = httpx.AsyncClient(
            base_url=shop_url.rstrip("/"),
            headers={"X-Shopify-Access-Token": access_token},
            timeout=timeout,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.http.aclose()

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The ``data`` of one GraphQL call, retried on throttling, 5xx and network trouble."""

        async def call() -> dict[str, Any]:
            response = await self.http.post(
                self.path, json={"query": query, "variables": variables}
            )
            response.raise_for_status()
            body = response.json()
            errors = body.get("errors") or []
            codes = {(e.get("extensions") or {}).get("code") for e in errors}
            if "THROTTLED" in codes:
                raise _throttled(response.request, body)
            if errors:
                raise ShopifyError(f"GraphQL errors: {[e.get('message') for e in errors]}")
            data: dict[str, Any] = body.get("data") or {}
            return data

        return await with_retries(call, self.backoff)

    async def available(self, item_ids: Iterable[str]) -> dict[tuple[str, str], int]:
        """(inventory item GID, location GID) -> ``available``, for every stocked level."""
        ids = sorted(set(item_ids))
        found: dict[tuple[str, str], int] = {}
        for start in range(0, len(ids), LEVELS_PAGE):
            data = await self.graphql(LEVELS_QUERY, {"ids": ids[start : start + LEVELS_PAGE]})
            for node in data.get("nodes") or []:
                if not node:
                    continue  # an id Shopify does not know (deleted item): nothing stocked
                for level in (node.get("inventoryLevels") or {}).get("nodes") or []:
                    for q in level.get("quantities") or []:
                        if q.get("name") == "available":
                            found[(node["id"], level["location"]["id"])] = int(q["quantity"])
        return found

    async def set_available(
        self, quantities: Sequence[SetQuantity], reference: str
    ) -> list[UserError]:
        """``inventorySetQuantities`` (name ``available``, reason ``correction``) with
        ``changeFromQuantity`` per level; returns the user errors (empty: all set).

        One idempotency key per call, reused by its transport retries: a retried request that
        Shopify already applied is not applied twice.
        """
        payload = {
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
        data = await self.graphql(SET_MUTATION, payload)
        result = data.get("inventorySetQuantities") or {}
        return [
            UserError(str(e.get("code") or ""), tuple(e.get("field") or ()), str(e["message"]))
            for e in result.get("userErrors") or []
        ]
