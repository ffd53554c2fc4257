"""A stub of Square's Inventory API (the two batch-retrieve calls, with cursors), serving
payloads built by :mod:`tests.support.square_payloads`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "EAAA-test-token"


def _object(change: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = (
        change.get("physical_count") or change.get("adjustment") or change.get("transfer") or {}
    )
    return found


def _at(change: dict[str, Any], locations: set[str]) -> bool:
    obj = _object(change)
    here = {obj.get("location_id"), obj.get("from_location_id"), obj.get("to_location_id")}
    return not locations or bool(here & locations)


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
