"""stocksync benchmark suite: ``.venv/bin/python -m bench`` (``--quick`` for a ~1 min smoke run).

Starts its own servers on 127.0.0.1 (a bundled redis-server with the AOF on, and
``stocksync serve`` subprocesses), measures, stops them all, prints a table and writes it to
``bench/results/latest.{json,md}``:

(a) script path: ``RedisStockStore.reserve``/``.release`` through redis.asyncio, beside INCR
    round trips on the same kind of client and pool (``bench.script_path``);
(b) HTTP path at saturation with wrk, beside GET /healthz on the same server
    (``bench.http_path``, scripts in ``bench/wrk/``);
(c) open-loop latency at a fixed offered rate from several generator processes
    (``bench.open_loop``, ``bench.loadgen``);
(d) ledger writer throughput: a realistic outbox drained with ``drain_once`` into SQLite and a
    throw-away PostgreSQL database, beside raw executemany inserts (``bench.ledger_path``);
(e) ledger lag under the HTTP reserve load, with appendfsync always and everysec slices
    alternating on one server (``bench.ledger_lag``, ``bench.lag_sampler``);
(f) webhook ingest: Shopify ``orders/create`` deliveries through a served API with the connector
    configured, beside plain ``POST /v1/reservations`` (``bench.webhooks``).

Every scenario is paired with a baseline measured in the same run on the same machine, and the
report shows ratios: absolute numbers depend on a shared, noisy 2-core host.
"""
