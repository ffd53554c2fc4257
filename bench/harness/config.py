"""Run profiles: what a default run and a ``--quick`` run measure, and for how long."""

from __future__ import annotations

from dataclasses import dataclass

HOT_SKU = "BENCH-HOT-1"
HOT_LOCATION = "bench-hot"
ON_HAND = 1_000_000_000  # the API's maximum count: never short, even without releases
TTL_SECONDS = 600
CHANNEL = "web"
FSYNC_OURS = "appendfsync always"  # stocksync's fsync label in the rows beside the peer's


@dataclass(frozen=True)
class Profile:
    name: str
    # ceiling: INCR and script slices alternate `rounds` times (drift hits both alike)
    script_fsyncs: tuple[str, ...]
    script_concurrency: tuple[int, ...]
    script_rounds: int
    script_slice_s: float
    script_warmup_s: float
    script_pipeline_concurrency: int  # then pipelined: this many clients, each ...
    script_pipeline_batch: int  # ... sending pipelines of this many calls (1 = skip)
    # http: the HTTP path with wrk (closed loop)
    http_workers: tuple[int, ...]
    http_concurrency: tuple[int, ...]
    http_pair_concurrency: tuple[int, ...]  # reserve+release pairs; () = skip
    http_everysec: bool  # also reserve at the top concurrency on an everysec Redis (workers=max)
    wrk_seconds: int  # per slice
    wrk_rounds: int  # slices of a scenario, alternating with its baseline's
    wrk_warmup_seconds: int
    # open_loop: latency at a fixed offered rate
    open_loop_workers: tuple[int, ...]
    open_loop_rates: tuple[int, ...]  # offered rates; the first is the target's (1,000/s)
    open_loop_seconds: float
    open_loop_warmup_s: float
    # ledger, drain: writer throughput: outbox size drained into SQLite and PostgreSQL
    ledger_events: int
    # ledger, lag: HTTP reserves at saturation into each database (W=2, wrk), for this long
    ledger_lag_seconds: int
    # hot: the SKU race (wrk, stocksync then the row-lock peer, both with hot_workers API processes)
    hot_workers: int
    hot_units: int
    hot_connections: int
    hot_max_seconds: int  # bound on one race (normally stopped at sell-out)
    # spread: closed-loop shoppers over skus x locations, on both systems
    spread_skus: int
    spread_locations: int
    spread_concurrency: int
    spread_procs: int  # generator processes
    spread_seconds: float
    spread_warmup_s: float
    # scale: positions loaded in steps (same Redis), memory and spread latency at each
    scale_positions: tuple[int, ...]
    scale_reservations: int  # held reservations created to measure their memory
    scale_seconds: float
    # warehouse: snapshot import, rows in the generated file
    warehouse_rows: int = 1_000_000
    # audit: a full audit of this many positions (Redis and a PostgreSQL ledger)
    audit_positions: int = 1_000_000
    # webhooks: Shopify orders/create deliveries vs POST /v1/reservations, alternating
    webhook_seconds: float = 3.0  # per slice
    webhook_rounds: int = 2
    webhook_concurrency: int = 32
    # ceiling: store.reserve alone vs INCR at this many concurrent callers (issue 18's figure)
    reserve_concurrency: int = 32
    # ceiling: the pick list's longest script with this many active holds at one location
    picklist_carts: int = 20_000
    # cluster: store.reserve on standalone vs clusters of 1-3 primaries, this many each
    cluster_reservations: int = 20_000
    cluster_concurrency: int = 64
    # propagation: an open-loop reservation rate held this long, change feed and SSE timed
    propagation_rate: int = 200
    propagation_seconds: float = 15.0


FULL = Profile(
    name="full",
    script_fsyncs=("always", "everysec"),
    script_concurrency=(1, 32),
    script_rounds=4,
    script_slice_s=0.75,
    script_warmup_s=0.3,
    script_pipeline_concurrency=4,
    script_pipeline_batch=50,
    http_workers=(1, 2),
    http_concurrency=(16, 64),
    http_pair_concurrency=(64,),
    http_everysec=True,
    wrk_seconds=3,
    wrk_rounds=2,
    wrk_warmup_seconds=1,
    open_loop_workers=(2,),
    open_loop_rates=(1000, 500),
    open_loop_seconds=10.0,
    open_loop_warmup_s=1.0,
    ledger_events=20_000,
    ledger_lag_seconds=60,
    hot_workers=2,
    hot_units=500,
    hot_connections=2000,
    hot_max_seconds=60,
    spread_skus=10_000,
    spread_locations=20,
    spread_concurrency=64,
    spread_procs=2,
    spread_seconds=8.0,
    spread_warmup_s=1.0,
    scale_positions=(10_000, 100_000, 1_000_000),
    scale_reservations=10_000,
    scale_seconds=5.0,
)

QUICK = Profile(
    name="quick",
    script_fsyncs=("always", "everysec"),
    script_concurrency=(1, 32),
    script_rounds=2,
    script_slice_s=0.4,
    script_warmup_s=0.2,
    script_pipeline_concurrency=4,
    script_pipeline_batch=50,
    http_workers=(1, 2),
    http_concurrency=(64,),
    http_pair_concurrency=(),
    http_everysec=False,
    wrk_seconds=2,
    wrk_rounds=1,
    wrk_warmup_seconds=1,
    open_loop_workers=(2,),
    open_loop_rates=(1000,),
    open_loop_seconds=5.0,
    open_loop_warmup_s=0.5,
    ledger_events=3_000,
    ledger_lag_seconds=10,
    hot_workers=2,
    hot_units=200,
    hot_connections=500,
    hot_max_seconds=20,
    spread_skus=500,
    spread_locations=20,
    spread_concurrency=64,
    spread_procs=2,
    spread_seconds=3.0,
    spread_warmup_s=0.5,
    scale_positions=(2_000, 20_000),
    scale_reservations=1_000,
    scale_seconds=3.0,
    warehouse_rows=20_000,
    audit_positions=20_000,
    webhook_seconds=1.5,
    webhook_rounds=1,
    cluster_reservations=4_000,
    propagation_seconds=5.0,
)
