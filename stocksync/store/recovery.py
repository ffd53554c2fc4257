"""The store's recovery side: freeze regressed SKUs, rebuild them from the ledger."""

from __future__ import annotations

import json
from typing import Any

from redis.exceptions import ResponseError

from stocksync.domain.model import DEFAULT_DOMAIN
from stocksync.store.redis_store import RedisStockStore


class RecoveryOps:
    """Regression checks and rebuilds of one stock domain of a store (DESIGN rule 6): each
    domain has its own per-SKU seqs, outbox and frozen SKUs."""

    def __init__(self, store: RedisStockStore, domain: str = DEFAULT_DOMAIN) -> None:
        self.store = store
        self.domain = domain
        self.keys = store.keys_of(domain)

    async def seqs(self) -> dict[str, int]:
        raw: dict[str, str] = await self.store.client.hgetall(self.keys.seq)  # type: ignore[assignment]
        return {sku: int(seq) for sku, seq in raw.items()}

    async def last_stream_id(self) -> str:
        """The newest id the outbox stream ever took (kept when entries are trimmed); "0-0"
        when the stream does not exist."""
        try:
            info: dict[str, Any] = await self.store.client.xinfo_stream(self.keys.outbox)
        except ResponseError:  # no such key
            return "0-0"
        return str(info["last-generated-id"])

    async def regressed(self) -> set[str]:
        members: set[str] = await self.store.client.smembers(self.keys.regressed)  # type: ignore[assignment]
        return members

    async def freeze_regressed(self, ledger_seqs: dict[str, int], chunk: int = 1000) -> list[str]:
        """Freeze every SKU whose Redis seq is lower than the ledger's; returns them."""
        frozen: list[str] = []
        items = list(ledger_seqs.items())
        for i in range(0, len(items), chunk):
            payload = json.dumps(dict(items[i : i + chunk]))
            frozen.extend(await self.store.run("check_regression", payload, domain=self.domain))
        return frozen

    async def rebuild_sku(
        self,
        sku: str,
        seq: int,
        positions: list[list[Any]],
        reservations: list[dict[str, Any]],
        finished: list[dict[str, Any]] | None = None,
        idempotency: list[list[Any]] | None = None,
        *,
        arrivals: list[list[Any]] | None = None,
        transfers: list[dict[str, Any]] | None = None,
        returns: list[dict[str, Any]] | None = None,
        returned: list[dict[str, Any]] | None = None,
    ) -> tuple[int, int]:
        """Replace one SKU's state with the ledger's and lift its freeze; also its arrivals
        and its lines of transfers, returns and returned units (see rebuild.lua)."""
        reply = await self.store.run(
            "rebuild",
            sku,
            seq,
            json.dumps(positions),
            json.dumps(reservations),
            json.dumps(finished or []),
            json.dumps(idempotency or []),
            *(json.dumps(part or []) for part in (arrivals, transfers, returns, returned)),
            domain=self.domain,
        )
        return int(reply[1]), int(reply[2])
