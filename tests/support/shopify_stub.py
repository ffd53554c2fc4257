"""A stub of Shopify's GraphQL Admin API that keeps Shopify's rules, each named beside it with
the page that documents it: it parses and validates every query against the schema of the API
version in the URL, computes its requested cost before running it, keeps the app's cost
bucket, and sets ``available`` with compare-and-set and idempotency keys.

Where Shopify's pages are silent about an exact answer (an error message's wording, an HTTP
status), the comment says so and the stub answers in the shape Shopify's pages and answers
show elsewhere; the connector must not depend on those details.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError, GraphQLSchema, execute_sync, parse, validate
from graphql.language import DocumentNode, FieldNode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.shopify_graphql import requested_cost, schema_for

TOKEN = "shpat_test_token"
API_VERSION = "2026-04"
RATE_LIMITS = "https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits"
MAX_QUERY_COST = 1000  # RATE_LIMITS: "a single query ... cannot exceed a cost of 1,000 points"
MAX_INPUT_ARRAY = 250  # https://shopify.dev/docs/api/usage/limits ("Input limits")
# https://shopify.dev/docs/api/usage/versioning: stable versions are named by the quarter
VERSION = re.compile(r"^\d{4}-(01|04|07|10)$")
CONCURRENT_REQUEST = "IDEMPOTENCY_CONCURRENT_REQUEST"
PREVIOUS_ATTEMPT_FAILED = "IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"
KEY_MISMATCH = "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
# what each code means, from the enum's reference page:
# https://shopify.dev/docs/api/admin-graphql/2026-04/enums/InventorySetQuantitiesUserErrorCode
MESSAGES = {
    CONCURRENT_REQUEST: "This request is currently in progress, please try again.",
    PREVIOUS_ATTEMPT_FAILED: (
        "A previous request with this idempotency key failed. Retry with a new idempotency key."
    ),
    KEY_MISMATCH: "The same idempotency key cannot be used with different operation parameters.",
    "CHANGE_FROM_QUANTITY_STALE": "The changeFromQuantity value does not match persisted value.",
    "ITEM_NOT_STOCKED_AT_LOCATION": "The inventory item is not stocked at the location.",
}


@dataclass
class CostBucket:
    """The app's leaky bucket (RATE_LIMITS; https://shopify.dev/docs/api/usage/limits): a query
    runs only when the bucket holds its requested cost, which it then takes; the bucket
    refills at ``restore_rate`` points a second up to ``maximum``. (Shopify refunds the
    difference to the actual cost afterwards; this stub never does, which only makes it
    stricter.)"""

    maximum: float = 1000.0
    restore_rate: float = 2000.0  # fast, so tests do not wait long; pacing tests set their own
    available: float = 1000.0
    at: float = field(default_factory=time.monotonic)

    def refill(self) -> None:
        now = time.monotonic()
        self.available = min(self.maximum, self.available + (now - self.at) * self.restore_rate)
        self.at = now

    def take(self, cost: int) -> bool:
        self.refill()
        if self.available < cost:
            return False
        self.available -= cost
        return True

    def status(self) -> dict[str, float]:
        self.refill()
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": math.floor(self.available * 1000) / 1000,  # never over
            "restoreRate": self.restore_rate,
        }


@dataclass
class ShopifyStub:
    levels: dict[tuple[str, str], int] = field(default_factory=dict)  # (item, loc) -> available
    bucket: CostBucket = field(default_factory=CostBucket)
    field_costs: dict[str, int] = field(default_factory=dict)  # "Type.field" -> own cost
    mutations: int = 0  # inventorySetQuantities calls that changed something
    stale: int = 0  # calls refused with CHANGE_FROM_QUANTITY_STALE
    throttle_next: int = 0  # answer this many calls THROTTLED, whatever the bucket holds
    throttled: int = 0  # THROTTLED answers given
    throttled_http_status: int = 200  # the pages do not say 200 or 429: tests try both
    cost_exceeded: int = 0  # MAX_COST_EXCEEDED answers given
    concurrent_next: int = 0  # answer this many mutations IDEMPOTENCY_CONCURRENT_REQUEST
    fail_next: int = 0  # fail this many mutations so that their key is spent
    keys: list[str] = field(default_factory=list)  # idempotency key of every mutation call
    history: list[list[int]] = field(default_factory=list)  # quantities of each applied call
    costs: list[int] = field(default_factory=list)  # requested cost of every query run
    _done: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    _failed: set[str] = field(default_factory=set)

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/admin/api/{version}/graphql.json", self.graphql, methods=["POST"])]
        )

    async def graphql(self, request: Request) -> JSONResponse:
        version = request.path_params["version"]
        if not VERSION.match(version):
            # Shopify's pages do not say what an unknown version name gets; a 404 like any
            # unknown path is our guess, and the connector refuses such names before sending.
            return JSONResponse({"errors": "Not Found"}, 404)
        if request.headers.get("X-Shopify-Access-Token") != TOKEN:
            # https://shopify.dev/docs/api/usage/response-codes: 401 Unauthorized
            return JSONResponse({"errors": "[API] Invalid API key or access token"}, 401)
        body = await request.json()
        answer = self.answer(version, body["query"], body.get("variables") or {})
        codes = {(e.get("extensions") or {}).get("code") for e in answer.get("errors") or ()}
        status = self.throttled_http_status if "THROTTLED" in codes else 200
        # every answer names the version that served it (https://shopify.dev/docs/api/usage/versioning)
        return JSONResponse(answer, status, headers={"X-Shopify-API-Version": version})

    def answer(self, version: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        schema = schema_for(version)
        try:
            document = parse(query)
        except GraphQLError as exc:
            return {"errors": [exc.formatted]}
        # Queries are validated against the version's schema before anything runs: an unknown
        # field, argument or directive is an error (wording: graphql-core's; Shopify's pages
        # do not give theirs).
        invalid = validate(schema, document)
        if invalid:
            return {"errors": [e.formatted for e in invalid]}
        too_long = _input_array_over_limit(variables)
        if too_long:  # https://shopify.dev/docs/api/usage/limits: "Requests return an error"
            return {"errors": [{"message": too_long}]}
        cost = requested_cost(schema, document, variables, self.field_costs)
        if cost > MAX_QUERY_COST:
            return self._cost_exceeded(cost)
        if self.throttle_next > 0 or not self.bucket.take(cost):
            self.throttle_next = max(0, self.throttle_next - 1)
            return self._throttled(cost)
        self.costs.append(cost)
        data, errors = self._execute(schema, document, variables)
        answer: dict[str, Any] = {"data": data, "extensions": self._cost(cost, cost)}
        if errors:
            answer["errors"] = errors
        return answer

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        # RATE_LIMITS ("Query cost"): every answer carries extensions.cost
        cost = {"requestedQueryCost": requested, "actualQueryCost": actual}
        return {"cost": {**cost, "throttleStatus": self.bucket.status()}}

    def _throttled(self, cost: int) -> dict[str, Any]:
        # RATE_LIMITS: a query the bucket cannot hold is refused, not run (actualQueryCost is
        # null). The shape is the one Shopify answers (errors[].extensions.code THROTTLED,
        # https://community.shopify.com/t/throttled/254776); the pages do not say whether the
        # HTTP status is 200 or 429, and the connector handles both.
        self.throttled += 1
        error = {
            "message": "Throttled",
            "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS},
        }
        return {"errors": [error], "extensions": self._cost(cost, None)}

    def _cost_exceeded(self, cost: int) -> dict[str, Any]:
        # RATE_LIMITS: the limit applies to the requested cost, before the query runs. The
        # shape (code, cost, maxCost) is the one Shopify answers, as reported by client
        # libraries (https://github.com/nozzlegear/ShopifySharp/issues/1031); the pages show
        # no example.
        self.cost_exceeded += 1
        error = {
            "message": (
                f"Query cost is {cost}, which exceeds the single query max cost limit "
                f"({MAX_QUERY_COST})."
            ),
            "extensions": {
                "code": "MAX_COST_EXCEEDED",
                "cost": cost,
                "maxCost": MAX_QUERY_COST,
                "documentation": RATE_LIMITS,
            },
        }
        return {"errors": [error], "extensions": self._cost(cost, None)}

    # -- running a query --------------------------------------------------------------------

    def _execute(
        self, schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        resolvers = {"nodes": self._nodes, "inventorySetQuantities": self._set_quantities}
        result = execute_sync(
            schema,
            document,
            root_value=resolvers,
            variable_values=variables,
            field_resolver=_field_resolver,
        )
        return result.data, [e.formatted for e in result.errors or ()]

    def _nodes(self, info: Any, ids: list[str]) -> list[dict[str, Any] | None]:
        # https://shopify.dev/docs/api/admin-graphql/2026-04/queries/nodes: null for an unknown id
        return [self._item(item_id) for item_id in ids]

    def _item(self, item_id: str) -> dict[str, Any] | None:
        stocked = sorted((loc, qty) for (item, loc), qty in self.levels.items() if item == item_id)
        if not stocked:
            return None

        def levels(info: Any, first: int | None = None, after: str | None = None, **_: Any):
            # https://shopify.dev/docs/api/usage/pagination-graphql: cursor-based pages
            start = int(after.removeprefix("cursor:")) + 1 if after else 0
            page = stocked[start : start + (first or 0)]
            last = start + len(page) - 1
            return {
                "nodes": [_level(loc, qty) for loc, qty in page],
                "pageInfo": {
                    "hasNextPage": last + 1 < len(stocked),
                    "hasPreviousPage": start > 0,
                    "startCursor": f"cursor:{start}" if page else None,
                    "endCursor": f"cursor:{last}" if page else None,
                },
            }

        return {"__typename": "InventoryItem", "id": item_id, "inventoryLevels": levels}

    def _set_quantities(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        key = _idempotency_key(info)
        if key is None:
            return self._apply(input)
        self.keys.append(key)
        params = json.dumps(input, sort_keys=True)
        # https://shopify.dev/docs/api/usage/implementing-idempotency: a repeat of a finished
        # request with its key gets the original result; the same key with other parameters
        # is refused.
        if key in self._done:
            done_params, result = self._done[key]
            return result if done_params == params else _refused(KEY_MISMATCH)
        if key in self._failed:
            return _refused(PREVIOUS_ATTEMPT_FAILED)  # the key is spent: a new one is needed
        if self.concurrent_next > 0:  # the first request with this key is still running
            self.concurrent_next -= 1
            return _refused(CONCURRENT_REQUEST)
        if self.fail_next > 0:  # it failed on Shopify's side: its key may not be used again
            self.fail_next -= 1
            self._failed.add(key)
            return _refused(PREVIOUS_ATTEMPT_FAILED)
        result = self._apply(input)
        self._done[key] = (params, result)
        return result

    def _apply(self, data: dict[str, Any]) -> dict[str, Any]:
        errors = []
        for n, q in enumerate(data["quantities"]):
            key = (q["inventoryItemId"], q["locationId"])
            change_from = q.get("changeFromQuantity")
            if key not in self.levels:
                errors.append(_error("ITEM_NOT_STOCKED_AT_LOCATION", n, "locationId"))
            elif change_from is not None and change_from != self.levels[key]:
                # https://shopify.dev/docs/api/admin-graphql/2026-04/mutations/inventorySetQuantities
                # compare-and-set: refused when the persisted quantity differs
                errors.append(_error("CHANGE_FROM_QUANTITY_STALE", n, "changeFromQuantity"))
        if errors:  # all or nothing
            self.stale += any(e["code"] == "CHANGE_FROM_QUANTITY_STALE" for e in errors)
            return {"inventoryAdjustmentGroup": None, "userErrors": errors}
        for q in data["quantities"]:
            self.levels[(q["inventoryItemId"], q["locationId"])] = q["quantity"]
        self.mutations += 1
        self.history.append([q["quantity"] for q in data["quantities"]])
        group = {
            "id": f"gid://shopify/InventoryAdjustmentGroup/{self.mutations}",
            "reason": data["reason"],
            "referenceDocumentUri": data.get("referenceDocumentUri"),
        }
        return {"inventoryAdjustmentGroup": group, "userErrors": []}


def _field_resolver(source: Any, info: Any, **args: Any) -> Any:
    value = source.get(info.field_name) if isinstance(source, dict) else None
    return value(info, **args) if callable(value) else value


def _level(location: str, quantity: int) -> dict[str, Any]:
    def quantities(info: Any, names: list[str]) -> list[dict[str, Any]]:
        known = {"available": quantity}
        return [{"id": f"{location}/{n}", "name": n, "quantity": known[n]} for n in names]

    return {"id": f"{location}/level", "location": {"id": location}, "quantities": quantities}


def _idempotency_key(info: Any) -> str | None:
    node: FieldNode = info.field_nodes[0]
    directive = next((d for d in node.directives or () if d.name.value == "idempotent"), None)
    if directive is None or not directive.arguments:
        return None
    value = directive.arguments[0].value
    name = getattr(getattr(value, "name", None), "value", None)
    if not name:
        return str(getattr(value, "value", ""))
    variables = getattr(info.variable_values, "coerced", info.variable_values)  # graphql-core 3.3
    return str(variables[name])


def _refused(code: str) -> dict[str, Any]:
    return {
        "inventoryAdjustmentGroup": None,
        "userErrors": [{"code": code, "field": None, "message": MESSAGES[code]}],
    }


def _error(code: str, index: int, name: str) -> dict[str, Any]:
    field_path = ["input", "quantities", str(index), name]
    return {"code": code, "field": field_path, "message": MESSAGES.get(code, code)}


def _input_array_over_limit(variables: Any, path: str = "") -> str | None:
    if isinstance(variables, list):
        if len(variables) > MAX_INPUT_ARRAY:
            return f"{path or 'input'}: {len(variables)} items, more than {MAX_INPUT_ARRAY}"
        found = (_input_array_over_limit(v, path) for v in variables)
        return next((f for f in found if f), None)
    if isinstance(variables, dict):
        found = (_input_array_over_limit(v, k) for k, v in variables.items())
        return next((f for f in found if f), None)
    return None
