"""Collections at the till: the hold each till sale of a page collects, found through the hold
code on its Square order (:mod:`connectors.square.holds` says where the code is read from).

One BatchRetrieveOrders call per page of changes (per 100 orders on it), not one per sale;
a sale naming its reservation in the adjustment's own ``reference_id`` needs no order. A code
counts only when its reservation holds the sale's item at the sale's store, so a code written
on the wrong line or order changes nothing. The sale itself is then one script call
(``sell.lua``): it fulfils the hold while active, takes nothing again when the hold was
fulfilled before (pressed "Collected" on the store page), and sells the rest plainly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from connectors.framework.config import IdMap
from connectors.square.client import SquareClient
from connectors.square.holds import hold_codes
from connectors.square.mapping import TillSale, till_sale
from connectors.square.shapes import Order
from stocksync.domain.errors import NotFound
from stocksync.store.pickups import PickupOps
from stocksync.store.redis_store import RedisStockStore

log = logging.getLogger(__name__)


class HoldFinder:
    """adjustment id -> reservation id, for the till sales of a page of changes."""

    def __init__(
        self, client: SquareClient, store: RedisStockStore, ids: IdMap, reservation_prefix: str
    ) -> None:
        self.client = client
        self.store = store
        self.pickups = PickupOps(store)
        self.ids = ids
        self.prefix = reservation_prefix

    async def holds(self, changes: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """The reservation each sale of ``changes`` collects, when its order names one."""
        sales = [sale for raw in changes if (sale := till_sale(raw, self.prefix)) is not None]
        if not sales:
            return {}
        orders = await self._orders([sale.order_id for sale in sales])
        found: dict[str, str] = {}
        for sale in sales:
            order = orders.get(sale.order_id)
            held = None if order is None else await self._hold_of(sale, order)
            if held is not None:
                found[sale.adjustment_id] = held
        return found

    async def _orders(self, order_ids: list[str]) -> dict[str, Order]:
        orders: dict[str, Order] = {}
        for raw in await self.client.orders(order_ids):
            try:
                order = Order.model_validate(raw)
            except ValidationError as exc:  # its sales stay plain sales
                log.warning("square order without a readable id or lines: %s", exc)
                continue
            orders[order.id] = order
        return orders

    async def _hold_of(self, sale: TillSale, order: Order) -> str | None:
        sku = self.ids.skus.get(sale.catalog_object_id)
        location = self.ids.locations.get(sale.location_id)
        codes = hold_codes(order, sale.catalog_object_id)
        if sku is None or location is None or not codes:
            return None
        for code in codes:
            reservation_id = await self.pickups.reservation_id_by_code(code)
            if reservation_id is None:
                continue
            try:
                held = await self.store.get_reservation(reservation_id)
            except NotFound:  # pruned after its retention
                continue
            if any(line.sku == sku and line.location_id == location for line in held.lines):
                return reservation_id
        log.info(
            "square sale %s (order %s): no hold of %s at %s under the codes %s; a plain sale",
            sale.adjustment_id,
            order.id,
            sku,
            location,
            ", ".join(codes),
        )
        return None
