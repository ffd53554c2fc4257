"""SQLModel tables of the ledger: movements, reservations, locations, keys, connectors' state."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BIG_ID = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Movement(SQLModel, table=True):
    """One row per outbox event of a SKU: the durable history of every stock change."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        # History (a position newest first), rebuild (a SKU), the regression check (max seq per
        # SKU) and the audit (Σ per position): the deltas ride along on PostgreSQL so the
        # audit's fold is an index-only scan (docs/ledger-at-volume.md has the plans).
        Index(
            "ix_movements_position",
            "namespace",
            "sku",
            "location_id",
            "seq",
            postgresql_include=[
                "d_on_hand",
                "d_reserved",
                "d_damaged",
                "d_quality_control",
                "d_in_transit",
            ],
        ),
        Index("ix_movements_reservation", "namespace", "reservation_id"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BIG_ID, primary_key=True, autoincrement=True)
    )
    event_id: str = Field(max_length=120, unique=True, description="namespace/stream-id")
    namespace: str = Field(max_length=80)
    kind: str = Field(max_length=32)
    sku: str = Field(max_length=64)
    location_id: str = Field(max_length=64)
    seq: int = Field(sa_type=BigInteger)
    reservation_id: str | None = Field(default=None, max_length=128)
    channel: str | None = Field(default=None, max_length=32)
    qty: int | None = None
    d_on_hand: int = 0
    d_reserved: int = 0
    # Stock beyond the shelf (docs/ledger-buckets.md): the deltas of a bucket event; 0 for
    # every other event (and for the rows written before migration 0007).
    d_damaged: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    d_quality_control: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    d_in_transit: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    on_hand: int | None = Field(default=None, description="on_hand after the event")
    reserved: int | None = Field(default=None, description="reserved after the event")
    source: str | None = Field(default=None, max_length=32)
    source_event_id: str | None = Field(default=None, max_length=128)
    reason: str | None = Field(default=None, max_length=32)
    occurred_at: datetime
    recorded_at: datetime = Field(default_factory=utcnow)
    details: str | None = Field(default=None, sa_column=Column(Text))
    actor: str | None = Field(
        default=None, max_length=80, description="who made the change: api:<key id>, connector"
    )


class LedgerReservation(SQLModel, table=True):
    """The current state of a reservation, folded from its events."""

    __tablename__ = "reservations"

    namespace: str = Field(primary_key=True, max_length=80)
    reservation_id: str = Field(primary_key=True, max_length=128)
    channel: str = Field(max_length=32)
    state: str = Field(max_length=16)
    lines: str = Field(sa_column=Column(Text, nullable=False), description="JSON [[sku,loc,qty]]")
    customer_ref: str | None = Field(default=None, max_length=64)
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    at_risk: bool = False


class CustomerErasure(SQLModel, table=True):
    """A customer reference erased on request (GDPR): the audit record keeps only its hash."""

    __tablename__ = "customer_erasures"
    __table_args__ = (Index("ix_customer_erasures_hash", "namespace", "ref_hash"),)

    id: int | None = Field(
        default=None, sa_column=Column(BIG_ID, primary_key=True, autoincrement=True)
    )
    namespace: str = Field(max_length=80)
    ref_hash: str = Field(max_length=64, description="sha256 of namespace and reference")
    actor: str | None = Field(default=None, max_length=80)
    reservations: int = Field(description="ledger reservations the reference was erased from")
    erased_at: datetime = Field(default_factory=utcnow)


class ReservationTransition(SQLModel, table=True):
    """Each state a reservation entered (and each extension), once."""

    __tablename__ = "reservation_transitions"
    __table_args__ = (UniqueConstraint("namespace", "reservation_id", "state", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    namespace: str = Field(max_length=80)
    reservation_id: str = Field(max_length=128, index=True)
    state: str = Field(max_length=16)
    at: datetime


class LedgerLocation(SQLModel, table=True):
    __tablename__ = "locations"

    namespace: str = Field(primary_key=True, max_length=80)
    location_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=100)
    kind: str = Field(max_length=16)
    lat: float | None = None
    lon: float | None = None
    pickup: bool = False
    ship: bool = False
    updated_at: datetime = Field(default_factory=utcnow)


class ConnectorCheckpoint(SQLModel, table=True):
    """Where a connector got to in its source (cursor or watermark)."""

    __tablename__ = "connector_checkpoints"

    connector: str = Field(primary_key=True, max_length=64)
    cursor: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class ConnectorDeadLetter(SQLModel, table=True):
    """A payload a connector could not map or apply: kept with the reason, never dropped."""

    __tablename__ = "connector_dead_letters"
    __table_args__ = (Index("ix_dead_letters_connector", "connector", "received_at"),)

    id: int | None = Field(
        default=None, sa_column=Column(BIG_ID, primary_key=True, autoincrement=True)
    )
    connector: str = Field(max_length=64)
    kind: str = Field(max_length=100, description="what the payload was: a webhook topic, a row")
    reason: str = Field(sa_column=Column(Text, nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(default_factory=utcnow)


class ConnectorFile(SQLModel, table=True):
    """A file a connector has processed, by content hash: each file is applied once."""

    __tablename__ = "connector_files"

    connector: str = Field(primary_key=True, max_length=64)
    content_hash: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=500)
    summary: str = Field(sa_column=Column(Text, nullable=False), description="JSON counts")
    processed_at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    """An API key: only a SHA-256 of its secret is stored; the key itself is shown once."""

    __tablename__ = "api_keys"

    key_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    secret_hash: str = Field(max_length=64)
    scopes: str = Field(max_length=200, description="comma-separated scopes")
    locations: str | None = Field(default=None, description="comma-separated; NULL = all")
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class WebhookSubscription(SQLModel, table=True):
    """A channel system's subscription to the change feed (stocksync.webhooks).

    The secret is kept as given, not hashed: the worker signs every message with it."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (Index("ix_webhook_subscriptions_namespace", "namespace", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)
    namespace: str = Field(max_length=80)
    url: str = Field(sa_column=Column(Text, nullable=False))
    events: str = Field(sa_column=Column(Text, nullable=False), description="JSON list")
    pool: str | None = Field(default=None, max_length=64)
    location_ids: str | None = Field(
        default=None, sa_column=Column(Text), description="JSON list; NULL = every location"
    )
    secret: str = Field(max_length=100, description="whsec_<base64>")
    created_at: datetime = Field(default_factory=utcnow)


class WebhookMessage(SQLModel, table=True):
    """One message of one subscription: waiting, delivered or dead (the durable queue)."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        Index("ix_webhook_messages_queue", "subscription_id", "status", "id"),
        Index("ix_webhook_messages_age", "status", "created_ms"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BIG_ID, primary_key=True, autoincrement=True)
    )
    subscription_id: str = Field(max_length=40)
    event_id: str = Field(max_length=64, description="the webhook-id header")
    event_type: str = Field(max_length=40)
    lane: int = Field(description="messages of one lane go out one at a time, in id order")
    body: str = Field(sa_column=Column(Text, nullable=False))
    at_ms: int = Field(sa_type=BigInteger, description="server time of the change")
    status: str = Field(max_length=12, description="pending | delivered | dead")
    attempts: int = 0
    next_attempt_ms: int = Field(sa_type=BigInteger)
    last_error: str | None = Field(default=None, max_length=300)
    created_ms: int = Field(sa_type=BigInteger)
    done_ms: int | None = Field(default=None, sa_type=BigInteger)
