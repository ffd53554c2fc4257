"""A stub of Shopify's GraphQL Admin API: ``inventorySetQuantities`` with compare-and-set on
``changeFromQuantity``, and the ``nodes(ids:)`` inventory-level read. Not a GraphQL engine: it
recognises the two operations the connector sends and answers in Shopify's shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "shpat_test_token"
API_VERSION = "2026-04"


@dataclass
class ShopifyStub:
    levels: dict[tuple[str, str], int] = field(
        default_factory=dict
    )  # (item, location) -> available
    mutations: int = 0  # inventorySetQuantities calls that changed something
    stale: int = 0  # calls refused with CHANGE_FROM_QUANTITY_STALE
    throttle_next: int = 0  # answer this many calls THROTTLED
    keys: list[str] = field(default_factory=list)  # idempotency keys seen
    history: list[list[int]] = field(default_factory=list)  # quantities of each applied call

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route(f"/admin/api/{API_VERSION}/graphql.json", self.graphql, methods=["POST"])]
        )

    async def graphql(self, request: Request) -> JSONResponse:
        if request.headers.get("X-Shopify-Access-Token") != TOKEN:
            return JSONResponse({"errors": "[API] Invalid API key or access token"}, 401)
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return JSONResponse(
                {
                    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                    "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": None}},
                }
            )
        body = await request.json()
        query, variables = body["query"], body.get("variables") or {}
        if "inventorySetQuantities" in query:
            return JSONResponse(
                {"data": {"inventorySetQuantities": self.set_quantities(variables)}}
            )
        if "nodes(ids:" in query:
            return JSONResponse({"data": {"nodes": [self.item(i) for i in variables["ids"]]}})
        return JSONResponse({"errors": [{"message": "unsupported operation"}]})

    def set_quantities(self, variables: dict[str, Any]) -> dict[str, Any]:
        data = variables["input"]
        self.keys.append(variables["key"])
        assert data["name"] == "available"
        assert data["reason"] == "correction"
        errors = []
        for n, q in enumerate(data["quantities"]):
            key = (q["inventoryItemId"], q["locationId"])
            if key not in self.levels:
                errors.append(_error("ITEM_NOT_STOCKED_AT_LOCATION", n, "locationId"))
            elif (
                q["changeFromQuantity"] is not None and q["changeFromQuantity"] != self.levels[key]
            ):
                errors.append(_error("CHANGE_FROM_QUANTITY_STALE", n, "changeFromQuantity"))
        if errors:  # all or nothing
            self.stale += any(e["code"] == "CHANGE_FROM_QUANTITY_STALE" for e in errors)
            return {"inventoryAdjustmentGroup": None, "userErrors": errors}
        for q in data["quantities"]:
            self.levels[(q["inventoryItemId"], q["locationId"])] = q["quantity"]
        self.mutations += 1
        self.history.append([q["quantity"] for q in data["quantities"]])
        group = {"reason": "correction", "referenceDocumentUri": data.get("referenceDocumentUri")}
        return {"inventoryAdjustmentGroup": group, "userErrors": []}

    def item(self, item_id: str) -> dict[str, Any] | None:
        stocked = [(loc, qty) for (item, loc), qty in self.levels.items() if item == item_id]
        if not stocked:
            return None
        nodes = [
            {"location": {"id": loc}, "quantities": [{"name": "available", "quantity": qty}]}
            for loc, qty in stocked
        ]
        return {"id": item_id, "inventoryLevels": {"nodes": nodes}}


def _error(code: str, index: int, name: str) -> dict[str, Any]:
    return {"code": code, "field": ["input", "quantities", str(index), name], "message": code}
