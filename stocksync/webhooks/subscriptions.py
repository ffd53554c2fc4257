"""Webhook subscriptions and their message queue, in SQL (synchronous: run in a thread).

A message row is the durable queue entry of one subscription: ``pending`` until a 2xx,
``delivered`` after, ``dead`` after the last attempt (or when the subscription's queue was full).
Rows are kept for ``webhook_retention_seconds`` after they are done, so a receiver can ask for a
replay of what it missed (``replay``), from any message id on.
"""

from __future__ import annotations

import json
import secrets
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Engine
from sqlmodel import Session

from stocksync.domain.errors import NotFound, WebhookLimitReached
from stocksync.ledger.tables import WebhookMessage, WebhookSubscription
from stocksync.webhooks.messages import Message, Subscription
from stocksync.webhooks.signing import new_secret

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
MSG = WebhookMessage.__table__  # type: ignore[attr-defined]
SUB = WebhookSubscription.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Queued:
    """A pending message as the sender needs it."""

    row_id: int
    event_id: str
    lane: int
    body: str
    at_ms: int
    attempts: int
    next_attempt_ms: int


@dataclass(frozen=True)
class Outcome:
    """One attempt's result, to record (``WebhookStore.mark_many``)."""

    row_id: int
    status: str
    attempts: int
    next_attempt_ms: int
    error: str | None
    now_ms: int


def lane_of(key: str, lanes: int) -> int:
    return zlib.crc32(key.encode()) % lanes


def subscription_of(row: WebhookSubscription) -> Subscription:
    return Subscription(
        id=row.id,
        url=row.url,
        secret=row.secret,
        events=frozenset(json.loads(row.events)),
        pool=row.pool,
        location_ids=None if row.location_ids is None else frozenset(json.loads(row.location_ids)),
    )


class WebhookStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _insert(self) -> postgresql.Insert | sqlite.Insert:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(MSG)
        return sqlite.insert(MSG)

    # -- subscriptions ---------------------------------------------------------------------

    def create(
        self,
        namespace: str,
        url: str,
        events: Sequence[str],
        pool: str | None,
        location_ids: Sequence[str] | None,
        *,
        limit: int,
    ) -> WebhookSubscription:
        with Session(self.engine) as session:
            count = session.scalar(
                select(func.count()).select_from(SUB).where(SUB.c.namespace == namespace)
            )
            if (count or 0) >= limit:
                raise WebhookLimitReached(
                    f"this namespace has {limit} webhook subscriptions", limit=limit
                )
            row = WebhookSubscription(
                id="wh_" + secrets.token_hex(12),
                namespace=namespace,
                url=url,
                events=json.dumps(sorted(set(events))),
                pool=pool,
                location_ids=None if location_ids is None else json.dumps(sorted(location_ids)),
                secret=new_secret(),
            )
            session.add(row)
            session.commit()
            session.refresh(row)
            return row

    def all_of(self, namespace: str) -> list[WebhookSubscription]:
        with Session(self.engine) as session:
            query = (
                select(WebhookSubscription)
                .where(WebhookSubscription.namespace == namespace)  # type: ignore[arg-type]
                .order_by(WebhookSubscription.created_at)  # type: ignore[arg-type]
            )
            return list(session.scalars(query))

    def get(self, namespace: str, subscription_id: str) -> WebhookSubscription:
        with Session(self.engine) as session:
            row = session.get(WebhookSubscription, subscription_id)
            if row is None or row.namespace != namespace:
                raise NotFound(f"no webhook subscription {subscription_id!r}")
            return row

    def delete(self, namespace: str, subscription_id: str) -> None:
        with Session(self.engine) as session:
            row = session.get(WebhookSubscription, subscription_id)
            if row is None or row.namespace != namespace:
                raise NotFound(f"no webhook subscription {subscription_id!r}")
            session.execute(delete(MSG).where(MSG.c.subscription_id == subscription_id))
            session.delete(row)
            session.commit()

    def active(self, namespace: str) -> list[Subscription]:
        return [subscription_of(row) for row in self.all_of(namespace)]

    # -- the queue -------------------------------------------------------------------------

    def enqueue(
        self,
        pairs: Sequence[tuple[str, Message]],
        *,
        lanes: int,
        max_pending: int,
        now_ms: int,
    ) -> int:
        """Queue messages (once each: an id already queued for a subscription is skipped), in
        one transaction. A subscription with ``max_pending`` waiting messages gets the new
        ones as dead letters (replayable), so its queue stays bounded. Returns how many rows
        were new."""
        if not pairs:
            return 0
        subs = sorted({sub_id for sub_id, _ in pairs})
        with Session(self.engine) as session:
            counts = dict(
                session.execute(
                    select(MSG.c.subscription_id, func.count())
                    .where(MSG.c.subscription_id.in_(subs), MSG.c.status == PENDING)
                    .group_by(MSG.c.subscription_id)
                ).all()
            )
            rows = []
            for sub_id, m in pairs:
                waiting = counts.get(sub_id, 0)
                full = waiting >= max_pending
                counts[sub_id] = waiting + (0 if full else 1)
                rows.append(
                    {
                        "subscription_id": sub_id,
                        "event_id": m.event_id,
                        "event_type": m.event_type,
                        "lane": lane_of(m.lane_key, lanes),
                        "body": m.body,
                        "at_ms": m.at_ms,
                        "status": DEAD if full else PENDING,
                        "attempts": 0,
                        "next_attempt_ms": now_ms,
                        "last_error": "queue_full" if full else None,
                        "created_ms": now_ms,
                        "done_ms": now_ms if full else None,
                    }
                )
            stmt = self._insert().on_conflict_do_nothing(
                index_elements=["subscription_id", "event_id"]
            )
            result = cast("CursorResult[Any]", session.execute(stmt, rows))
            session.commit()
            return max(0, int(result.rowcount or 0))

    def pending(self, subscription_id: str, limit: int) -> list[Queued]:
        """The subscription's oldest waiting messages, in queue order."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(
                    MSG.c.id,
                    MSG.c.event_id,
                    MSG.c.lane,
                    MSG.c.body,
                    MSG.c.at_ms,
                    MSG.c.attempts,
                    MSG.c.next_attempt_ms,
                )
                .where(MSG.c.subscription_id == subscription_id, MSG.c.status == PENDING)
                .order_by(MSG.c.id)
                .limit(limit)
            ).all()
            return [Queued(*row) for row in rows]

    def mark_many(self, outcomes: Sequence[Outcome]) -> None:
        """Record many attempts' results in one transaction (a sender's pass): one commit, and
        on SQLite one fsync, instead of one per message."""
        if not outcomes:
            return
        statement = (
            update(MSG)
            .where(MSG.c.id == bindparam("row"), MSG.c.status == PENDING)
            .values(
                status=bindparam("new_status"),
                attempts=bindparam("new_attempts"),
                next_attempt_ms=bindparam("next_ms"),
                last_error=bindparam("error"),
                done_ms=bindparam("done"),
            )
        )
        rows = [
            {
                "row": o.row_id,
                "new_status": o.status,
                "new_attempts": o.attempts,
                "next_ms": o.next_attempt_ms,
                "error": None if o.error is None else o.error[:300],
                "done": None if o.status == PENDING else o.now_ms,
            }
            for o in outcomes
        ]
        with Session(self.engine) as session:
            session.connection().execute(statement, rows)
            session.commit()

    def messages(
        self, namespace: str, subscription_id: str, status: str, limit: int
    ) -> list[WebhookMessage]:
        """Messages of one status, oldest first (the dead letters, for an operator)."""
        self.get(namespace, subscription_id)
        with Session(self.engine) as session:
            query = (
                select(WebhookMessage)
                .where(
                    WebhookMessage.subscription_id == subscription_id,  # type: ignore[arg-type]
                    WebhookMessage.status == status,  # type: ignore[arg-type]
                )
                .order_by(WebhookMessage.id)  # type: ignore[arg-type]
                .limit(limit)
            )
            return list(session.scalars(query))

    def replay(self, namespace: str, subscription_id: str, from_event_id: str, now_ms: int) -> int:
        """Queue again every kept message of the subscription from ``from_event_id`` on
        (delivered or dead), with fresh attempts; returns how many."""
        self.get(namespace, subscription_id)
        with Session(self.engine) as session:
            start = session.scalar(
                select(MSG.c.id).where(
                    MSG.c.subscription_id == subscription_id, MSG.c.event_id == from_event_id
                )
            )
            if start is None:
                raise NotFound(f"no kept message {from_event_id!r} of this subscription")
            result = cast(
                "CursorResult[Any]",
                session.execute(
                    update(MSG)
                    .where(MSG.c.subscription_id == subscription_id, MSG.c.id >= start)
                    .values(
                        status=PENDING,
                        attempts=0,
                        next_attempt_ms=now_ms,
                        last_error=None,
                        done_ms=None,
                    )
                ),
            )
            session.commit()
            return int(result.rowcount or 0)

    def prune(self, before_ms: int) -> int:
        """Forget delivered and dead messages done before ``before_ms``."""
        with Session(self.engine) as session:
            result = cast(
                "CursorResult[Any]",
                session.execute(
                    delete(MSG).where(MSG.c.status != PENDING, MSG.c.done_ms < before_ms)
                ),
            )
            session.commit()
            return int(result.rowcount or 0)
