"""What Square refuses, rule by rule, each beside the page of Square's documentation it comes
from (Square API reference, Release 2025-08-20; the same for these calls in 2024-12-18).

Where Square documents the values a field takes but not its answer to another value, the
stub refuses it with 400 and Square's error shape, and the rule says so: a client that sends
such a value then fails in the tests instead of against the real Square.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from starlette.responses import JSONResponse

# https://developer.squareup.com/docs/build-basics/general-considerations/handling-errors
# A failed request answers a 4xx/5xx status with {"errors": [Error, ...]}; an Error has
# "category" and "code" (required), "detail" and "field"
# (https://developer.squareup.com/reference/square/objects/Error).
INVALID_REQUEST = "INVALID_REQUEST_ERROR"
AUTHENTICATION = "AUTHENTICATION_ERROR"
API_ERROR = "API_ERROR"

# https://developer.squareup.com/reference/square/objects/InventoryChangeType
CHANGE_TYPES = frozenset({"PHYSICAL_COUNT", "ADJUSTMENT", "TRANSFER"})
# https://developer.squareup.com/reference/square/inventory-api/batch-retrieve-inventory-changes
# "types: The filter to return results by InventoryChangeType values other than TRANSFER. The
# default value is [PHYSICAL_COUNT, ADJUSTMENT]." The answer to TRANSFER is not documented.
FILTERABLE_CHANGE_TYPES = frozenset({"PHYSICAL_COUNT", "ADJUSTMENT"})
# https://developer.squareup.com/reference/square/enums/InventoryState
INVENTORY_STATES = frozenset(
    {
        "CUSTOM",
        "IN_STOCK",
        "SOLD",
        "RETURNED_BY_CUSTOMER",
        "RESERVED_FOR_SALE",
        "SOLD_ONLINE",
        "ORDERED_FROM_VENDOR",
        "RECEIVED_FROM_VENDOR",
        "IN_TRANSIT_TO",
        "NONE",
        "WASTE",
        "UNLINKED_RETURN",
        "COMPOSED",
        "DECOMPOSED",
        "SUPPORTED_BY_NEWER_VERSION",
        "IN_TRANSIT",
    }
)
# The request objects' fields, as the reference lists them:
# https://developer.squareup.com/reference/square/inventory-api/batch-retrieve-inventory-changes
CHANGES_FIELDS = frozenset(
    {
        "catalog_object_ids",
        "location_ids",
        "types",
        "states",
        "updated_after",
        "updated_before",
        "cursor",
        "limit",
    }
)
# https://developer.squareup.com/reference/square/inventory-api/batch-retrieve-inventory-counts
COUNTS_FIELDS = frozenset(
    {"catalog_object_ids", "location_ids", "updated_after", "cursor", "states", "limit"}
)
# https://developer.squareup.com/reference/square/orders-api/batch-retrieve-orders
ORDERS_FIELDS = frozenset({"location_id", "order_ids"})
# "order_ids: The IDs of the orders to retrieve. A maximum of 100 orders can be retrieved per
# request." (required)
MAX_ORDER_IDS = 100
# Both batch-retrieve calls document "limit" with minimum 1 and maximum 1000 (pages above).
LIMIT_MIN, LIMIT_MAX = 1, 1000
# https://developer.squareup.com/docs/build-basics/versioning-overview
# A request without Square-Version is served at the application's default version; the
# header's format is YYYY-MM-DD (ErrorCode INVALID_SQUARE_VERSION_FORMAT below).
SQUARE_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Refused(Exception):
    """A request Square answers with an error: ``status`` and one Error object."""

    def __init__(
        self, status: int, category: str, code: str, detail: str, field: str | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.category, self.code = status, category, code
        self.detail, self.field = detail, field

    def response(self) -> JSONResponse:
        error: dict[str, str] = {"category": self.category, "code": self.code}
        error["detail"] = self.detail
        if self.field is not None:
            error["field"] = self.field
        return JSONResponse({"errors": [error]}, status_code=self.status)


# The codes below are Square's (https://developer.squareup.com/reference/square/enums/ErrorCode)
# with the category the reference gives each. Which code an endpoint answers for which mistake
# is not documented per endpoint: the stub picks the code whose description fits.


def check_version(header: str | None) -> None:
    """Square-Version absent: served (application default); malformed: refused."""
    if header is not None and not SQUARE_VERSION.match(header):
        # ErrorCode INVALID_SQUARE_VERSION_FORMAT: "The provided Square-Version is incorrectly
        # formatted."
        raise Refused(400, INVALID_REQUEST, "INVALID_SQUARE_VERSION_FORMAT", header)


def check_fields(body: Mapping[str, Any], known: Collection[str]) -> None:
    """Only the request object's documented fields."""
    for name in body:
        if name not in known:
            # ErrorCode UNKNOWN_BODY_PARAMETER: "The body parameter is not recognized by the
            # requested endpoint."
            raise Refused(
                400, INVALID_REQUEST, "UNKNOWN_BODY_PARAMETER", f"unknown field {name!r}", name
            )


def check_enums(body: Mapping[str, Any], name: str, allowed: Collection[str]) -> None:
    """Every value of the list field ``name`` is one of ``allowed``."""
    values = body.get(name)
    if values is None:
        return
    if not isinstance(values, list):
        # ErrorCode EXPECTED_ARRAY: "The endpoint expected the provided value to be an array
        # or list."
        raise Refused(400, INVALID_REQUEST, "EXPECTED_ARRAY", f"{name} is not a list", name)
    for value in values:
        if value not in allowed:
            # ErrorCode INVALID_ENUM_VALUE: "The provided static string is not valid for the
            # field."
            raise Refused(
                400,
                INVALID_REQUEST,
                "INVALID_ENUM_VALUE",
                f"{value!r} is not a valid value of {name}",
                name,
            )


def check_limit(body: Mapping[str, Any]) -> None:
    limit = body.get("limit")
    if limit is None:
        return
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise Refused(400, INVALID_REQUEST, "EXPECTED_INTEGER", "limit", "limit")
    if limit < LIMIT_MIN:
        # ErrorCode VALUE_TOO_LOW: "The provided value is less than the supported minimum."
        raise Refused(400, INVALID_REQUEST, "VALUE_TOO_LOW", f"limit {limit}", "limit")
    if limit > LIMIT_MAX:
        # ErrorCode VALUE_TOO_HIGH: "The provided value is greater than the supported maximum."
        raise Refused(400, INVALID_REQUEST, "VALUE_TOO_HIGH", f"limit {limit}", "limit")


def check_time(body: Mapping[str, Any], name: str) -> datetime | None:
    """An RFC 3339 timestamp field, parsed; None when absent."""
    value = body.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        # ErrorCode INVALID_TIME: "Formatting for the provided time value is incorrect."
        raise Refused(400, INVALID_REQUEST, "INVALID_TIME", f"{name} {value!r}", name)
    return moment


def check_changes_request(body: Mapping[str, Any]) -> None:
    """BatchRetrieveInventoryChanges (page linked at CHANGES_FIELDS)."""
    check_fields(body, CHANGES_FIELDS)
    check_enums(body, "types", CHANGE_TYPES)
    # Documented as "values other than TRANSFER"; Square's answer to TRANSFER is not
    # documented: refused here like any value the filter does not take.
    check_enums(body, "types", FILTERABLE_CHANGE_TYPES)
    check_enums(body, "states", INVENTORY_STATES)
    check_limit(body)
    check_time(body, "updated_after")
    check_time(body, "updated_before")


def check_counts_request(body: Mapping[str, Any]) -> None:
    """BatchRetrieveInventoryCounts (page linked at COUNTS_FIELDS)."""
    check_fields(body, COUNTS_FIELDS)
    check_enums(body, "states", INVENTORY_STATES)
    check_limit(body)
    check_time(body, "updated_after")


def check_orders_request(body: Mapping[str, Any]) -> None:
    """BatchRetrieveOrders (page linked at ORDERS_FIELDS)."""
    check_fields(body, ORDERS_FIELDS)
    order_ids = body.get("order_ids")
    if order_ids is None:
        # ErrorCode MISSING_REQUIRED_PARAMETER: "The request is missing a required path,
        # query, or body parameter."
        raise Refused(400, INVALID_REQUEST, "MISSING_REQUIRED_PARAMETER", "order_ids", "order_ids")
    if not isinstance(order_ids, list) or not all(isinstance(i, str) for i in order_ids):
        raise Refused(400, INVALID_REQUEST, "EXPECTED_ARRAY", "order_ids", "order_ids")
    if len(order_ids) > MAX_ORDER_IDS:
        # Documented maximum; the answer above it is not documented. ErrorCode
        # ARRAY_LENGTH_TOO_LONG: "The provided array has too many elements."
        raise Refused(
            400, INVALID_REQUEST, "ARRAY_LENGTH_TOO_LONG", f"{len(order_ids)} ids", "order_ids"
        )
