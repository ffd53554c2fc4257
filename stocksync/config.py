"""Configuration from the environment (prefix ``STOCKSYNC_``), with pydantic-settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stocksync.domain.model import CHANNEL_PATTERN


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STOCKSYNC_", env_file=".env", extra="ignore")

    redis_url: str | None = Field(
        default=None, description="Redis to use; unset = start the bundled valkey-server"
    )
    redis_server_binary: Path | None = Field(
        default=None,
        description="server binary the embedded default runs instead of the bundled "
        "valkey-server 8.1 (Redis >= 7.0 or Valkey >= 7.2)",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset = SQLite in the data dir"
    )
    data_dir: Path = Path(".stocksync")
    namespace: str = Field(default="default", pattern=r"^[A-Za-z0-9_-]{1,32}$")

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, le=64)
    header_read_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="a request head (request line and headers) must arrive within this long, "
        "or the server answers 408 and closes the connection (slow-loris clients)",
    )

    # Durability of the embedded Redis: "always" fsyncs the AOF before a reply is sent, so an
    # acknowledged hold survives a power cut; "everysec" may lose up to a second of writes.
    appendfsync: Literal["always", "everysec", "no"] = "always"

    redis_pool_size: int = Field(default=64, ge=1, le=10_000)
    redis_pool_timeout: float = 5.0

    redis_cluster: bool = Field(
        default=False,
        description="REDIS_URL names one seed node of a Redis/Valkey Cluster: script calls go "
        "to the primary of their stock domain's slot, following MOVED/ASK redirects",
    )
    replica_wait: Literal["auto", "off", "wait", "waitaof"] = Field(
        default="auto",
        description="after a change, wait for a replica before answering: wait = one replica "
        "has it in memory (WAIT 1), waitaof = the primary and one replica fsynced it to their "
        "AOF (WAITAOF 1 1), off = never (a failover can lose acknowledged changes); auto = "
        "wait on a cluster shard that has a replica, off on a standalone server",
    )
    replica_wait_timeout_ms: int = Field(
        default=1000,
        ge=1,
        le=60_000,
        description="how long a change waits for its replica; then 503 replication_timeout "
        "(the change was applied on the primary; an idempotent retry is safe)",
    )
    redis_cluster_retry_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="on a cluster, how long a script call keeps retrying (topology refreshed, "
        "backing off) while its slot's primary is down or the cluster is failing over",
    )

    channels: list[Annotated[str, Field(pattern=CHANNEL_PATTERN)]] = Field(
        default_factory=lambda: ["web", "app", "chat", "pos", "marketplace"],
        min_length=1,
        description="the channels a reservation may name; any other is 422 (a key capped on "
        "'chat' cannot hold again as 'chat2')",
    )
    default_ttl_seconds: int = Field(default=900, ge=1)
    max_ttl_seconds: int = Field(default=14 * 24 * 3600, ge=1)
    # Hold policy per channel (JSON in the environment, e.g. '{"chat": 86400}'): the TTL of a
    # hold that names none, and the longest allowed; other channels use the two above.
    channel_ttl_seconds: dict[str, int] = Field(
        default_factory=lambda: {
            "web": 900,
            "app": 900,
            "marketplace": 900,
            "pos": 600,
            "chat": 2 * 24 * 3600,
        }
    )
    channel_max_ttl_seconds: dict[str, int] = Field(
        default_factory=lambda: {"chat": 14 * 24 * 3600}
    )
    max_active_holds_per_key: dict[str, int] = Field(
        default={"chat": 200},
        description="per channel: active holds one API key may have (a chat key cannot "
        "hoard a store's stock); channels not listed are not capped (web carts)",
    )
    max_held_units_per_location_per_key: dict[str, int] = Field(
        default={"chat": 20},
        description="per channel: units one API key may hold at one location, summed over its "
        "active holds (one hold cannot take a store's stock); channels not listed are not capped",
    )
    max_active_holds_per_customer: int = Field(default=5, ge=0, description="0: no cap")
    rate_limit_per_key_per_second: int = Field(
        default=1000,
        ge=0,
        description="requests one API key may make per second, over all workers (each process "
        "allows its share); over it: 429 with Retry-After. 0: no limit",
    )
    nearby_radius_km: float = Field(
        default=50.0, gt=0, le=20_000, description="radius of `near` when radius_km is omitted"
    )
    max_event_streams: int = Field(default=50, ge=1, description="concurrent SSE streams")
    max_event_streams_per_key: int = Field(
        default=5,
        ge=1,
        description="concurrent SSE streams of one API key, so one key cannot take every slot",
    )
    event_keepalive_seconds: float = Field(default=15.0, gt=0)
    retention_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    return_retention_seconds: int = Field(
        default=90 * 24 * 3600,
        ge=60,
        description="how long a return and a reservation's returned units are kept in Redis; "
        "a reservation takes returns for this long after its fulfilment (the ledger keeps "
        "the reservation's lines once Redis pruned it)",
    )
    outbox_maxlen: int = Field(
        default=0, ge=0, description="0: only the ledger copy trims the outbox (no event lost)"
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    lean_path: bool = Field(
        default=True,
        description="serve the hot routes on the lean path (stocksync.api.lean); false: "
        "through FastAPI like every other route (same answers, more CPU)",
    )
    max_webhook_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="bodies of connector webhooks (whole orders)"
    )

    reaper_interval_seconds: float = Field(default=1.0, gt=0)
    reaper_batch: int = Field(default=16, ge=1)  # one script: 60-150 µs a hold
    run_workers: bool = Field(
        default=True,
        description="serve runs the reaper, ledger copy and checks (in a process of their own); "
        "false: run `stocksync worker` beside it",
    )
    workers_in_api: bool = Field(
        default=False,
        description="with one API process, run the workers inside it instead of a process of "
        "their own (one process less; they then share its CPU and event loop)",
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="where serve's workers process serves /metrics (on the API's host); "
        "unset = the API port + 1, 0 = not served",
    )
    worker_restart_backoff_seconds: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="first wait before a failed worker restarts (doubling to 30 s)",
    )
    ledger_batch: int = Field(default=500, ge=1, le=10_000)
    ledger_claim_idle_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a dead ledger copy's unacknowledged events are taken over after this long",
    )
    outbox_group_idle_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="an outbox consumer group (a connector) whose consumers were all idle this "
        "long no longer holds back the trim",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="webhook URLs may target private, loopback, link-local and reserved "
        "addresses (a receiver on the same host or network); refused by default (SSRF)",
    )
    webhook_allowed_cidrs: list[str] = Field(
        default_factory=list,
        description="networks webhook URLs may target even though they are private (JSON list "
        "in the environment, e.g. '[\"10.20.0.0/16\"]')",
    )
    webhook_max_subscriptions: int = Field(default=100, ge=1, le=10_000)
    webhook_max_url_length: int = Field(default=2048, ge=16, le=8192)
    webhook_max_location_ids: int = Field(default=500, ge=1, le=500)
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="every request to a webhook endpoint"
    )
    webhook_max_attempts: int = Field(
        default=10, ge=1, le=50, description="then a message is dead-lettered (replayable)"
    )
    webhook_retry_base_seconds: float = Field(
        default=1.0, gt=0, le=600, description="first retry delay; doubles, with jitter"
    )
    webhook_retry_max_seconds: float = Field(default=900.0, gt=0, le=86_400)
    webhook_max_pending: int = Field(
        default=10_000,
        ge=1,
        description="messages waiting per subscription; beyond, new ones go straight to the "
        "dead letters (replayable) so a long-down endpoint cannot grow the queue without bound",
    )
    webhook_lanes: int = Field(
        default=4,
        ge=1,
        le=64,
        description="requests in flight per subscription (one per lane; a SKU's events, and a "
        "reservation's, always take the same lane, in order)",
    )
    webhook_batch: int = Field(default=500, ge=1, le=10_000)
    webhook_retention_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, description="delivered and dead messages kept for replay"
    )
    regression_check_seconds: float = Field(default=10.0, gt=0)
    audit_interval_seconds: float = Field(
        default=300.0, gt=0, description="how often the workers audit Redis against the ledger"
    )
    api_key_cache_seconds: float = Field(default=10.0, ge=0)
    metrics_require_key: bool = Field(
        default=False,
        description="GET /metrics needs a key with the read (or admin) scope; off by default "
        "so existing Prometheus scrapes keep working (it shows counts and latencies, no ids)",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="json: one JSON object per line; console: for a person; auto: console when "
        "stderr is a terminal, else json",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="INFO logs one line per request; WARNING drops those"
    )
    ledger_consumer_idle_seconds_max: float = Field(
        default=60.0,
        gt=0,
        description="readiness and `stocksync status` count a ledger copy consumer alive while "
        "it has read the outbox within this long (a running one reads every second)",
    )
    connectors_config: Path | None = Field(
        default=None,
        description="TOML file of connector settings; the API mounts the webhooks of those listed",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def hold_ttl(self, channel: str) -> int:
        """TTL of a hold on ``channel`` that names none."""
        return self.channel_ttl_seconds.get(channel, self.default_ttl_seconds)

    def max_hold_ttl(self, channel: str) -> int:
        """The longest TTL (or pickup deadline) a reservation on ``channel`` may get."""
        return self.channel_max_ttl_seconds.get(channel, self.max_ttl_seconds)

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'stocksync.db').resolve()}"
