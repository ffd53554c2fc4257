"""Customers: erasure of a customer reference on request (GDPR)."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request

from stocksync.api.deps import Admin, services
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.schemas import CustomerRefPath, ErasureOut

router = APIRouter(prefix="/v1/customers", tags=["customers"], responses=PROBLEM_RESPONSES)


@router.delete("/{customer_ref}", response_model=ErasureOut)
async def erase_customer(
    customer_ref: CustomerRefPath, principal: Admin, request: Request
) -> ErasureOut:
    """Erase a customer reference from every reservation, active or ended, in Redis and in
    the ledger. Stock, states and movements stay; the erasure is recorded with a hash of the
    reference and the key that asked. Repeating it is harmless."""
    svc = services(request)
    namespace = svc.settings.namespace
    known = await anyio.to_thread.run_sync(
        svc.ledger.customer_reservation_ids, namespace, customer_ref
    )
    in_redis = await svc.store.erase_customer(customer_ref, known)
    in_ledger = await anyio.to_thread.run_sync(
        svc.ledger.erase_customer, namespace, customer_ref, f"api:{principal.key_id}"
    )
    return ErasureOut(
        customer_ref=customer_ref, redis_reservations=in_redis, ledger_reservations=in_ledger
    )
