"""A stub of the Square API calls the connector makes, serving payloads built by
:mod:`tests.support.square_payloads` and refusing what Square refuses
(:mod:`tests.support.square_rules`, each rule beside its documentation page)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.square_rules import (
    API_ERROR,
    AUTHENTICATION,
    INVALID_REQUEST,
    Refused,
    check_changes_request,
    check_counts_request,
    check_orders_request,
    check_time,
    check_version,
)

TOKEN = "EAAA-test-token"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CURSORS = 10_000  # cursors the stub remembers (a test issues a handful)


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
    """What the stub serves (inventory changes and counts, orders); tests change it between
    sweeps. Requests whose number (from 1) is in ``fail_on`` get a 503."""

    changes: list[dict[str, Any]] = field(default_factory=list)
    counts: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2
    fail_on: set[int] = field(default_factory=set)
    requests: list[dict[str, Any]] = field(default_factory=list)
    versions: list[str | None] = field(default_factory=list)  # Square-Version of each request
    cursors_issued: list[str] = field(default_factory=list)
    _cursors: dict[str, tuple[str, int]] = field(  # cursor -> (its query, next offset)
        default_factory=dict, init=False, repr=False
    )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/inventory/changes/batch-retrieve", self._changes, methods=["POST"]),
                Route("/v2/inventory/counts/batch-retrieve", self._counts, methods=["POST"]),
                Route("/v2/orders/batch-retrieve", self._orders, methods=["POST"]),
            ]
        )

    async def _read(self, request: Request) -> dict[str, Any]:
        """The request's JSON body, or :class:`Refused` as Square would answer it."""
        # https://developer.squareup.com/reference/square/enums/ErrorCategory
        # AUTHENTICATION_ERROR: "Most commonly, the request had a missing, malformed, or
        # otherwise invalid Authorization header."
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            raise Refused(401, AUTHENTICATION, "UNAUTHORIZED", "bad or missing bearer token")
        check_version(request.headers.get("square-version"))
        self.versions.append(request.headers.get("square-version"))
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # ErrorCode EXPECTED_JSON_BODY: "The request body is not a JSON object."
            raise Refused(400, INVALID_REQUEST, "EXPECTED_JSON_BODY", "not a JSON object")
        self.requests.append(body)
        if len(self.requests) in self.fail_on:  # a test's outage, in Square's error shape
            raise Refused(503, API_ERROR, "SERVICE_UNAVAILABLE", "try again")
        return body

    async def _changes(self, request: Request) -> JSONResponse:
        try:
            body = await self._read(request)
            check_changes_request(body)
            return self._changes_page(body)
        except Refused as refused:
            return refused.response()

    def _changes_page(self, body: dict[str, Any]) -> JSONResponse:
        # https://developer.squareup.com/reference/square/inventory-api/batch-retrieve-inventory-changes
        # "Returns historical physical counts and adjustments", types default [PHYSICAL_COUNT,
        # ADJUSTMENT]: never transfers. updated_after is documented as filtering on
        # "calculated_at", a field changes do not have; the stub filters on created_at.
        after = check_time(body, "updated_after") or EPOCH
        locations = set(body.get("location_ids") or ())
        types = set(body.get("types") or ("PHYSICAL_COUNT", "ADJUSTMENT"))
        found = []
        for change in self.changes:
            if change["type"] not in types or not _at(change, locations):
                continue
            if datetime.fromisoformat(_object(change)["created_at"]) > after:
                found.append(change)
        # "sorted in ascending order according their occurred_at timestamp (oldest first)"
        found.sort(key=lambda c: str(_object(c)["occurred_at"]))
        return self._page(found, body, "changes")

    async def _counts(self, request: Request) -> JSONResponse:
        try:
            body = await self._read(request)
            check_counts_request(body)
            return self._counts_page(body)
        except Refused as refused:
            return refused.response()

    def _counts_page(self, body: dict[str, Any]) -> JSONResponse:
        # https://developer.squareup.com/reference/square/inventory-api/batch-retrieve-inventory-counts
        # "When updated_after is specified, only counts that have changed since that time ...
        # are returned"; "sorted in descending order according to their calculated_at
        # timestamp (newest first)". Without a states filter every state is returned.
        after = check_time(body, "updated_after") or EPOCH
        locations = set(body.get("location_ids") or ())
        states = set(body.get("states") or ())
        found = [
            c
            for c in self.counts
            if (not states or c["state"] in states)
            and (not locations or c["location_id"] in locations)
            and datetime.fromisoformat(c["calculated_at"]) > after
        ]
        found.sort(key=lambda c: datetime.fromisoformat(c["calculated_at"]), reverse=True)
        return self._page(found, body, "counts")

    async def _orders(self, request: Request) -> JSONResponse:
        try:
            body = await self._read(request)
            check_orders_request(body)
        except Refused as refused:
            return refused.response()
        # https://developer.squareup.com/reference/square/orders-api/batch-retrieve-orders
        # "If a given order ID does not exist, the ID is ignored instead of generating an
        # error"; with location_id, only the orders of that location.
        wanted, location = set(body["order_ids"]), body.get("location_id")
        found = [
            o
            for o in self.orders
            if o["id"] in wanted and (location is None or o["location_id"] == location)
        ]
        return JSONResponse({"orders": found})

    def expire_cursors(self) -> None:
        """Every cursor handed out so far stops working (pages have a limited lifespan)."""
        self._cursors.clear()

    def _page(self, items: list[dict[str, Any]], body: dict[str, Any], key: str) -> JSONResponse:
        query = json.dumps({k: v for k, v in body.items() if k != "cursor"}, sort_keys=True)
        start = 0
        if body.get("cursor") is not None:
            issued = self._cursors.get(body["cursor"])
            # https://developer.squareup.com/docs/working-with-apis/pagination: send the cursor
            # "along with the same original request body"; "A page of retrieved records has a
            # limited lifespan". Square's answer to another body or an old cursor is not
            # documented; refused here with ErrorCode INVALID_CURSOR ("The pagination cursor
            # included in the request is invalid.").
            if issued is None or issued[0] != query:
                raise Refused(400, INVALID_REQUEST, "INVALID_CURSOR", "unknown cursor", "cursor")
            start = issued[1]
        end = start + min(self.page_size, int(body.get("limit") or self.page_size))
        out: dict[str, Any] = {key: items[start:end]}
        if end < len(items):
            cursor = uuid.uuid4().hex
            if len(self._cursors) >= MAX_CURSORS:
                self._cursors.clear()
            self._cursors[cursor] = (query, end)
            self.cursors_issued.append(cursor)
            out["cursor"] = cursor
        return JSONResponse(out)
