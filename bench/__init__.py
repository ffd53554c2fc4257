"""stocksync benchmark suite: ``.venv/bin/python -m bench`` (``--quick``: small sizes, ~1.5 min).

Starts its own servers on 127.0.0.1 (a bundled redis-server with the AOF on, and
``stocksync serve`` subprocesses), measures, stops them all, prints a table and writes it to
``bench/results/latest.{json,md}``:

(a) script path: ``RedisStockStore.reserve``/``.release`` through redis.asyncio, beside INCR
    round trips on the same kind of client and pool (``bench.scenarios.ceiling``);
(b) HTTP path at saturation with wrk, beside GET /healthz on the same server
    (``bench.scenarios.http``, scripts in ``bench/load/wrk/``);
(c) open-loop latency at a fixed offered rate from several generator processes
    (``bench.scenarios.open_loop``, ``bench.load.loadgen``);
(d) ledger writer throughput: a realistic outbox drained with ``drain_once`` into SQLite and a
    throw-away PostgreSQL database, beside raw executemany inserts (``bench.scenarios.ledger``);
(e) ledger lag under the HTTP reserve load, with appendfsync always and everysec slices
    alternating on one server (``bench.scenarios.ledger``, ``bench.harness.lag_sampler``).
(f) hot SKU flash sale: thousands of keep-alive buyers (wrk, ``bench/load/wrk/hot.lua``) race
    for a few hundred units, on stocksync and on the row-lock peer (``bench.peer``); units sold are
    read back from each store (``bench.scenarios.hot``);
(g) spread load over many SKUs and locations, per operation, on both systems
    (``bench.scenarios.spread``, ``bench.load.spread_gen``, ``bench.harness.seeding``);
(h) scale: Redis memory per position and per hold, and spread latency, by catalogue size
    (``bench.scenarios.scale``);
(i) warehouse snapshot import: a generated file through ``stocksync connector run warehouse``,
    beside csv parsing + pipelined HSETs of the same rows (``bench.scenarios.warehouse``);
(j) webhook ingest: Shopify ``orders/create`` deliveries through a served API with the connector
    configured, beside plain ``POST /v1/reservations`` (``bench.scenarios.webhooks``).

Every scenario is paired with a baseline measured in the same run on the same machine, and the
report shows ratios: absolute numbers depend on a shared, noisy 2-core host.
"""
