"""JSON request bodies that refuse duplicate keys.

``{"qty": 1, "qty": 900}`` is valid JSON to most parsers, which keep the last value: a proxy,
a signature check or a log that reads the first one sees another request than we apply. Every
router that takes a JSON body uses :class:`StrictJsonRoute`, so FastAPI decodes its bodies with
a hook that refuses a repeated key; the refusal is FastAPI's own ``json_invalid`` (422).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class DuplicateKey(ValueError):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for key, value in pairs:
        if key in decoded:
            raise DuplicateKey(f"duplicate key {key!r}")
        decoded[key] = value
    return decoded


def loads_strict(body: bytes) -> Any:
    """``json.loads`` that raises ``JSONDecodeError`` on an object with a repeated key."""
    try:
        return json.loads(body, object_pairs_hook=_refuse_duplicates)
    except DuplicateKey as exc:
        raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from exc


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body may not repeat a key (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
