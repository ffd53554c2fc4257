"""Transfers between two locations of one stock domain: ship, receive, cancel, read, list.

Each change is one script call in the domain of the transfer's locations (DESIGN rules 1, 2):
a transfer between two domains would touch two slots, so it is refused (``cross_domain``).
A transfer id is found again by the domain that holds it (cached per process, otherwise one
EXISTS per domain, pipelined).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

from stocksync.domain.errors import CrossDomain, IdempotencyConflict, NotFound, Unprocessable
from stocksync.domain.model import MAX_LINES, MAX_QTY, TransferState
from stocksync.domain.transfers import (
    MAX_ARRIVALS,
    Transfer,
    transfer_fingerprint,
    unique_lines,
)
from stocksync.store.replies import field_pairs, raise_for_refusal
from stocksync.store.routing import Routing
from stocksync.store.stale_routes import reroute, unknown_location
from stocksync.store.transfer_replies import parse_transfer, transfer_reply

TRANSFERS_CACHED = 65_536  # transfer id -> domain entries per process (LRU)
LIST_LIMIT_MAX = 200  # transfers one list call returns at most


def _lines(lines: Sequence[tuple[str, int]], least: int) -> list[tuple[str, int]]:
    """Lines sorted by SKU, each SKU once, each qty in least..MAX_QTY, at most MAX_LINES."""
    if len(lines) > MAX_LINES or any(not least <= qty <= MAX_QTY for _, qty in lines):
        raise Unprocessable(
            f"at most {MAX_LINES} lines of {least}..{MAX_QTY} units; nothing was changed"
        )
    try:
        return unique_lines(lines)
    except ValueError as exc:
        raise Unprocessable(f"{exc}; nothing was changed") from exc


def access_of(locations: frozenset[str] | None) -> str:
    """The scripts' ``access`` argument for a caller bound to ``locations`` (None: any)."""
    return "" if locations is None else ",".join(sorted(locations))


class Transfers(Routing):
    """The store's transfers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._transfer_domains: OrderedDict[str, str] = OrderedDict()

    async def ship_transfer(
        self,
        transfer_id: str,
        from_location_id: str,
        to_location_id: str,
        lines: Sequence[tuple[str, int]],
        *,
        expected_at_ms: int | None = None,
        force: bool = False,
    ) -> Transfer:
        """Ship at once: the units leave the source's on_hand (only what is available unless
        ``force``, then up to on_hand) and enter the target's in_transit. Idempotent by
        ``transfer_id``: the same request again answers the stored transfer (``replayed``)."""
        if from_location_id == to_location_id:
            raise Unprocessable("a transfer's two locations differ; nothing was changed")
        if not lines:
            raise Unprocessable("a transfer ships at least one line; nothing was changed")
        ordered = _lines(lines, 1)
        fp = transfer_fingerprint(from_location_id, to_location_id, ordered, expected_at_ms, force)
        domain = await self._transfer_domain_of_ends(from_location_id, to_location_id)
        await self._refuse_id_elsewhere(transfer_id, domain)
        args = (
            transfer_id,
            from_location_id,
            to_location_id,
            json.dumps([[sku, qty] for sku, qty in ordered]),
            "" if expected_at_ms is None else expected_at_ms,
            "1" if force else "",
            fp,
            MAX_ARRIVALS,
        )
        reply = await self.run("transfer_ship", *args, domain=domain)
        ends = (from_location_id, to_location_id)
        if unknown_location(reply) and (fresh := await reroute(self, ends, domain)):
            domain = fresh  # a stale route: a location moved to another domain
            reply = await self.run("transfer_ship", *args, domain=domain)
        transfer = transfer_reply(transfer_id, reply, action="ship")
        self._remember_transfer(transfer_id, domain)
        return transfer

    async def receive_transfer(
        self,
        transfer_id: str,
        lines: Sequence[tuple[str, int]],
        *,
        supply_id: str | None = None,
        access: str = "",
    ) -> Transfer:
        """Receive a shipped transfer at its target: each SKU's units received (at most what
        was shipped; a SKU not named is received 0) enter on_hand, and the named incoming
        supply is consumed by them. The same receipt again is a replay. ``access``: see
        :func:`access_of` (a location-bound key must be bound to the target)."""
        receipt = json.dumps([[sku, qty] for sku, qty in _lines(lines, 0)])
        return await self._change_transfer("receive", transfer_id, receipt, supply_id or "", access)

    async def cancel_transfer(self, transfer_id: str, *, access: str = "") -> Transfer:
        """Cancel a shipped transfer: its units go back to the source's on_hand. Cancelling
        again is a replay. ``access``: a location-bound key must be bound to the source."""
        return await self._change_transfer("cancel", transfer_id, access)

    async def _change_transfer(self, action: str, transfer_id: str, *args: str) -> Transfer:
        for attempt in range(2):
            domain = await self._domain_of_transfer(transfer_id, fresh=attempt > 0)
            if domain is None:
                break
            reply = await self.run(f"transfer_{action}", transfer_id, *args, domain=domain)
            if reply[0] != "not_found":
                return transfer_reply(transfer_id, reply, action=action)
            self._transfer_domains.pop(transfer_id, None)  # expired, or cached stale
        raise NotFound(f"transfer {transfer_id!r} not found", resource="transfer")

    async def get_transfer(self, transfer_id: str) -> Transfer:
        """A transfer (a terminal one is kept for the retention); :class:`NotFound`."""
        for attempt in range(2):
            domain = await self._domain_of_transfer(transfer_id, fresh=attempt > 0)
            if domain is None:
                break
            key = self.keys_of(domain).transfer(transfer_id)
            fields: dict[str, str] = await self.client.hgetall(key)  # type: ignore[assignment]
            if fields:
                return parse_transfer(transfer_id, fields)
            self._transfer_domains.pop(transfer_id, None)
        raise NotFound(f"transfer {transfer_id!r} not found", resource="transfer")

    async def list_transfers(
        self,
        location_id: str,
        *,
        state: TransferState | None = None,
        direction: Literal["in", "out", "both"] = "both",
        limit: int = 100,
    ) -> list[Transfer]:
        """The transfers from (``out``) or to (``in``) a location, newest first."""
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise Unprocessable(f"limit is 1..{LIST_LIMIT_MAX}")
        domain = await self.domain_of_location(location_id)
        wanted = "" if state is None else state.value
        reply = await self.run(
            "list_transfers", location_id, wanted, direction, limit, domain=domain
        )
        raise_for_refusal(reply, action="list transfers")
        return [parse_transfer(str(row[0]), field_pairs(row[1:])) for row in reply[1:]]

    # -- routing by transfer id ------------------------------------------------------------

    async def _transfer_domain_of_ends(self, from_location_id: str, to_location_id: str) -> str:
        """The one domain of a transfer's two locations. A location the directory does not
        know is :class:`NotFound` when the other is in another domain (else the script says
        so); two known locations in two domains are :class:`CrossDomain`."""
        ends = (from_location_id, to_location_id)
        grouped = await self.group_by_domain(ends)
        if len(grouped) == 1:
            return next(iter(grouped))
        for location_id in ends:
            if not await self.client.hexists(self.directory.location_domains, location_id):
                raise NotFound(f"unknown location {location_id!r}", resource="location")
        raise CrossDomain(
            f"{from_location_id!r} and {to_location_id!r} are in different stock domains ("
            + "; ".join(f"{d}: {', '.join(locs)}" for d, locs in sorted(grouped.items()))
            + "); a transfer's two locations must be in one domain. Nothing was changed.",
            domains={d: sorted(locs) for d, locs in grouped.items()},
        )

    async def _domain_of_transfer(self, transfer_id: str, *, fresh: bool = False) -> str | None:
        """The domain holding a transfer id (None: none does)."""
        held = None if fresh else self._transfer_domains.get(transfer_id)
        if held is not None:
            self._transfer_domains.move_to_end(transfer_id)
            return held
        found = await self._domains_holding_transfer(transfer_id, fresh=fresh)
        if len(found) != 1:
            return None
        self._remember_transfer(transfer_id, found[0])
        return found[0]

    async def _domains_holding_transfer(
        self, transfer_id: str, *, fresh: bool = False
    ) -> list[str]:
        domains = await self.domains(fresh=fresh)
        async with self.client.pipeline(transaction=False) as pipe:
            for domain in domains:
                pipe.exists(self.keys_of(domain).transfer(transfer_id))
            return [d for d, n in zip(domains, await pipe.execute(), strict=True) if n]

    async def _refuse_id_elsewhere(self, transfer_id: str, domain: str) -> None:
        """A transfer id names one transfer across domains: a shipment of an id another
        domain holds is a conflict (checked before the script call; two first shipments of
        one id racing in two domains are not caught)."""
        if self._transfer_domains.get(transfer_id) == domain:
            return
        if len(await self.domains()) == 1:
            return
        elsewhere = [d for d in await self._domains_holding_transfer(transfer_id) if d != domain]
        if elsewhere:
            raise IdempotencyConflict(
                f"transfer {transfer_id!r} already exists in stock domain {elsewhere[0]!r}; "
                "nothing was changed"
            )

    def _remember_transfer(self, transfer_id: str, domain: str) -> None:
        self._transfer_domains[transfer_id] = domain
        self._transfer_domains.move_to_end(transfer_id)
        while len(self._transfer_domains) > TRANSFERS_CACHED:
            self._transfer_domains.popitem(last=False)
