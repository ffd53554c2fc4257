"""A stub of Square's Inventory API (the two batch-retrieve calls, with cursors) and builders
of payloads shaped like Square's documented examples."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "EAAA-test-token"
SOURCE_APP = {
    "product": "SQUARE_POS",
    "application_id": "416ff29c-86c4-4feb-b58c-9705f21f3ea0",
    "name": "Square Point of Sale 4.37",
}


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ago(**delta: float) -> str:
    return rfc3339(datetime.now(UTC) - timedelta(**delta))


def physical_count(
    change_id: str, catalog: str, location: str, quantity: str, occurred_at: str, **extra: Any
) -> dict[str, Any]:
    """A ``PHYSICAL_COUNT`` change as in Square's BatchRetrieveInventoryChanges example."""
    return {
        "type": "PHYSICAL_COUNT",
        "physical_count": {
            "id": change_id,
            "reference_id": "22c07cf4-5626-4224-89f9-691112019399",
            "catalog_object_id": catalog,
            "catalog_object_type": "ITEM_VARIATION",
            "state": "IN_STOCK",
            "location_id": location,
            "quantity": quantity,
            "source": SOURCE_APP,
            "employee_id": "LRK57NSQ5X7PUD05",
            "occurred_at": occurred_at,
            "created_at": extra.pop("created_at", occurred_at),
            **extra,
        },
    }


def adjustment(
    change_id: str,
    catalog: str,
    location: str,
    quantity: str,
    occurred_at: str,
    from_state: str = "IN_STOCK",
    to_state: str = "SOLD",
    **extra: Any,
) -> dict[str, Any]:
    """An ``ADJUSTMENT`` change shaped like Square's InventoryAdjustment."""
    return {
        "type": "ADJUSTMENT",
        "adjustment": {
            "id": change_id,
            "from_state": from_state,
            "to_state": to_state,
            "location_id": location,
            "catalog_object_id": catalog,
            "catalog_object_type": "ITEM_VARIATION",
            "quantity": quantity,
            "total_price_money": {"amount": 4000, "currency": "USD"},
            "occurred_at": occurred_at,
            "created_at": extra.pop("created_at", occurred_at),
            "source": SOURCE_APP,
            "employee_id": "AV7YRCGI2H1J5NQ8E1XIZCNA",
            **extra,
        },
    }


def transfer(
    change_id: str,
    catalog: str,
    from_location: str,
    to_location: str,
    quantity: str,
    occurred_at: str,
    state: str = "IN_STOCK",
) -> dict[str, Any]:
    """A ``TRANSFER`` change shaped like Square's InventoryTransfer."""
    return {
        "type": "TRANSFER",
        "transfer": {
            "id": change_id,
            "state": state,
            "from_location_id": from_location,
            "to_location_id": to_location,
            "catalog_object_id": catalog,
            "catalog_object_type": "ITEM_VARIATION",
            "quantity": quantity,
            "occurred_at": occurred_at,
            "created_at": occurred_at,
            "source": SOURCE_APP,
        },
    }


def _object(change: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = (
        change.get("physical_count") or change.get("adjustment") or change.get("transfer") or {}
    )
    return found


def _at(change: dict[str, Any], locations: set[str]) -> bool:
    obj = _object(change)
    here = {obj.get("location_id"), obj.get("from_location_id"), obj.get("to_location_id")}
    return not locations or bool(here & locations)


def inventory_count(
    catalog: str, location: str, quantity: str, calculated_at: str, state: str = "IN_STOCK"
) -> dict[str, Any]:
    """An InventoryCount, as in counts batch-retrieve and ``inventory.count.updated``."""
    return {
        "catalog_object_id": catalog,
        "catalog_object_type": "ITEM_VARIATION",
        "state": state,
        "location_id": location,
        "quantity": quantity,
        "calculated_at": calculated_at,
    }


def count_updated_event(event_id: str, counts: list[dict[str, Any]]) -> dict[str, Any]:
    """An ``inventory.count.updated`` notification as Square documents it."""
    return {
        "merchant_id": "6SSW7HV8K2ST5",
        "type": "inventory.count.updated",
        "event_id": event_id,
        "created_at": ago(seconds=1),
        "data": {
            "type": "inventory",
            "id": "84e4ac73-d605-4dbd-a9e5-ffff794ddb9d",
            "object": {"inventory_counts": counts},
        },
    }


@dataclass
class SquareStub:
    """What the stub serves; tests change it between sweeps. Requests whose number (from 1)
    is in ``fail_on`` get a 503."""

    changes: list[dict[str, Any]] = field(default_factory=list)
    counts: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2
    fail_on: set[int] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/inventory/changes/batch-retrieve", self._changes, methods=["POST"]),
                Route("/v2/inventory/counts/batch-retrieve", self._counts, methods=["POST"]),
            ]
        )

    async def _read(self, request: Request) -> dict[str, Any] | JSONResponse:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return _error(401, "UNAUTHORIZED")
        if not request.headers.get("square-version"):
            return _error(400, "MISSING_REQUIRED_PARAMETER")
        body: dict[str, Any] = await request.json()
        self.requests.append(body)
        if len(self.requests) in self.fail_on:
            return _error(503, "SERVICE_UNAVAILABLE")
        return body

    async def _changes(self, request: Request) -> JSONResponse:
        body = await self._read(request)
        if isinstance(body, JSONResponse):
            return body
        after = datetime.fromisoformat(body.get("updated_after", "1970-01-01T00:00:00Z"))
        locations = set(body.get("location_ids") or ())
        types = set(body.get("types") or ("PHYSICAL_COUNT", "ADJUSTMENT", "TRANSFER"))
        found = []
        for change in self.changes:
            if change["type"] not in types or not _at(change, locations):
                continue
            if datetime.fromisoformat(_object(change)["created_at"]) > after:
                found.append(change)
        found.sort(key=lambda c: str(_object(c)["occurred_at"]))
        return self._page(found, body.get("cursor"), "changes")

    async def _counts(self, request: Request) -> JSONResponse:
        body = await self._read(request)
        if isinstance(body, JSONResponse):
            return body
        locations = set(body.get("location_ids") or ())
        states = set(body.get("states") or ("IN_STOCK",))
        found = [
            c
            for c in self.counts
            if c["state"] in states and (not locations or c["location_id"] in locations)
        ]
        return self._page(found, body.get("cursor"), "counts")

    def _page(self, items: list[dict[str, Any]], cursor: str | None, key: str) -> JSONResponse:
        start = int(cursor or 0)
        end = start + self.page_size
        out: dict[str, Any] = {key: items[start:end]}
        if end < len(items):
            out["cursor"] = str(end)
        return JSONResponse(out)


def _error(status: int, code: str) -> JSONResponse:
    errors = [{"category": "API_ERROR", "code": code, "detail": code.lower()}]
    return JSONResponse({"errors": errors}, status_code=status)
