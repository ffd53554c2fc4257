"""HTTP client for the Square API calls the connector makes: inventory changes and counts,
and the orders behind till sales.

Square answers a failed request with a 4xx/5xx status and ``{"errors": [{"category", "code",
"detail", "field"}]}``
(https://developer.squareup.com/docs/build-basics/general-considerations/handling-errors):
:class:`SquareRefused` carries those errors, so a log names Square's reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from connectors.framework.retry import Backoff, with_retries
from connectors.square.config import SquareConfig
from connectors.square.shapes import ChangesPage, CountsPage, OrdersPage

CHANGES_PATH = "/v2/inventory/changes/batch-retrieve"
COUNTS_PATH = "/v2/inventory/counts/batch-retrieve"
ORDERS_PATH = "/v2/orders/batch-retrieve"
# "A maximum of 100 orders can be retrieved per request" (BatchRetrieveOrdersRequest.order_ids).
MAX_ORDERS_PER_CALL = 100
# The ``types`` filter takes "InventoryChangeType values other than TRANSFER" (Square's
# BatchRetrieveInventoryChanges reference); transfers reach the engine through counts.
CHANGE_TYPES = ("PHYSICAL_COUNT", "ADJUSTMENT")
MAX_ERRORS_SHOWN = 5
MAX_BODY_SHOWN = 200  # characters of a non-Square error body kept in the message


class SquareError(Exception):
    """Square answered 2xx but reported errors in the body."""


class SquareRefused(httpx.HTTPStatusError):
    """Square answered an error status; ``codes`` are the codes of its ``errors``."""

    def __init__(self, path: str, response: httpx.Response) -> None:
        self.errors = _errors_of(response)
        self.codes = frozenset(str(e.get("code")) for e in self.errors)
        reason = _describe(self.errors) or response.text[:MAX_BODY_SHOWN]
        super().__init__(
            f"{path} answered {response.status_code}: {reason}",
            request=response.request,
            response=response,
        )


class SquareClient:
    """``async with SquareClient(config) as square: ...``; every call retries transient errors
    (transport trouble, 429 and 5xx) with exponential backoff and jitter."""

    def __init__(self, config: SquareConfig, backoff: Backoff | None = None) -> None:
        self.config = config
        self.backoff = backoff or config.retry.backoff()
        self.http = httpx.AsyncClient(
            base_url=str(config.base_url).rstrip("/"),
            timeout=config.timeout_seconds,
            headers={
                "Authorization": f"Bearer {config.access_token.get_secret_value()}",
                "Square-Version": config.square_version,
                "Accept": "application/json",
            },
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.http.aclose()

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            response = await self.http.post(path, json=body)
            if not response.is_success:  # retried when the status is transient (429, 5xx)
                raise SquareRefused(path, response)
            data = response.json()
            if not isinstance(data, dict):
                raise SquareError(f"{path} answered {type(data).__name__}, not an object")
            return data

        return await with_retries(call, self.backoff)

    async def changes_page(
        self, location_ids: list[str], updated_after: str, cursor: str | None
    ) -> ChangesPage:
        """One page of physical counts and adjustments created after ``updated_after``."""
        body: dict[str, Any] = {
            "location_ids": location_ids,
            "types": list(CHANGE_TYPES),
            "updated_after": updated_after,
            "limit": self.config.page_limit,
        }
        if cursor:
            body["cursor"] = cursor
        page = ChangesPage.model_validate(await self._post(CHANGES_PATH, body))
        _raise_errors(page.errors)
        return page

    async def counts_page(
        self, location_ids: list[str], updated_after: str | None, cursor: str | None
    ) -> CountsPage:
        """One page of current IN_STOCK counts, newest ``calculated_at`` first; with
        ``updated_after``, only the counts that changed since then."""
        body: dict[str, Any] = {
            "location_ids": location_ids,
            "states": ["IN_STOCK"],
            "limit": self.config.page_limit,
        }
        if updated_after:
            body["updated_after"] = updated_after
        if cursor:
            body["cursor"] = cursor
        page = CountsPage.model_validate(await self._post(COUNTS_PATH, body))
        _raise_errors(page.errors)
        return page

    async def counts(self, location_ids: list[str]) -> AsyncIterator[dict[str, Any]]:
        """Every current IN_STOCK count at ``location_ids``, following the cursor."""
        cursor: str | None = None
        while True:
            page = await self.counts_page(location_ids, None, cursor)
            for count in page.counts:
                yield count
            cursor = page.cursor
            if not cursor:
                return

    async def orders(self, order_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The orders of ``order_ids`` (one BatchRetrieveOrders call per 100 ids). Square leaves
        out an id it does not know ("the ID is ignored instead of generating an error")."""
        unique = list(dict.fromkeys(order_ids))
        found: list[dict[str, Any]] = []
        for start in range(0, len(unique), MAX_ORDERS_PER_CALL):
            chunk = unique[start : start + MAX_ORDERS_PER_CALL]
            page = OrdersPage.model_validate(await self._post(ORDERS_PATH, {"order_ids": chunk}))
            _raise_errors(page.errors)
            found.extend(page.orders)
        return found


def _raise_errors(errors: list[dict[str, Any]]) -> None:
    if errors:
        raise SquareError(f"Square reported errors: {_describe(errors)}")


def _describe(errors: list[dict[str, Any]]) -> str:
    shown = errors[:MAX_ERRORS_SHOWN]
    return "; ".join(
        f"{e.get('code')}" + (f" ({e['field']})" if e.get("field") else "") + f": {e.get('detail')}"
        for e in shown
    )


def _errors_of(response: httpx.Response) -> list[dict[str, Any]]:
    """Square's ``errors`` of an error response; [] when the body is not Square's shape."""
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, dict)]
