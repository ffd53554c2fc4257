"""The ledger copy of every stock domain, in one workers process.

Each domain has an outbox stream of its own, in the domain's Redis Cluster slot, so one
XREADGROUP cannot read several of them on a cluster: each domain gets a task of its own (a
:class:`~stocksync.workers.ledger_copy.LedgerCopy`, same group and consumer name, its own
stream). Domains appear while the process runs (a location created in a new one): the list is
read again every ``rescan_seconds`` and a copy starts for each new domain. A copy retries its
own failures, so one domain's trouble never stops another's copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from redis.exceptions import RedisError

from stocksync.store.outbox import Outbox
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_copy import LedgerCopy

log = logging.getLogger(__name__)

BLOCKING_READS = 2  # copies blocking in XREADGROUP at once (each holds a pooled connection)
RESCAN_SECONDS = 5.0


async def run_ledger_copies(
    store: RedisStockStore,
    make_copy: Callable[[Outbox], LedgerCopy],
    *,
    block_ms: int = 1000,
    rescan_seconds: float = RESCAN_SECONDS,
) -> None:
    """Copy every domain's outbox into the ledger forever, starting copies for new domains."""
    blocking = anyio.CapacityLimiter(BLOCKING_READS)
    started: set[str] = set()
    async with anyio.create_task_group() as tg:
        while True:
            try:
                domains = await store.domains(fresh=True)
            except RedisError as exc:  # the running copies carry on; look again later
                log.warning("ledger copy: the list of domains was not read: %s", exc)
                domains = ()
            for domain in domains:
                if domain not in started:
                    started.add(domain)
                    copy = make_copy(store.outbox_of(domain))
                    copy.blocking = blocking
                    tg.start_soon(copy.run, block_ms)
                    log.info("ledger copy of domain %s started", domain)
            await anyio.sleep(rescan_seconds)
