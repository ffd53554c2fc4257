"""stocksync benchmark suite: ``.venv/bin/python -m bench`` (``--quick``: small sizes, ~1.5 min).

Starts its own servers on 127.0.0.1 (a bundled redis-server with the AOF on, and
``stocksync serve`` subprocesses), measures, stops them all, prints a table and writes it to
``bench/results/latest.{json,md}``. The sections, each run alone with ``--only <name>`` and each
the module of that name in ``bench/scenarios/``:

ceiling   ``RedisStockStore.reserve``/``.release`` through redis.asyncio, beside INCR round trips
          on the same kind of client and pool;
http      the HTTP path at saturation with wrk, beside GET /healthz on the same server;
open_loop latency at a fixed offered rate from several generator processes;
ledger    the ledger writer's throughput (a realistic outbox drained with ``drain_once`` into
          SQLite and a throw-away PostgreSQL database, beside raw executemany inserts), then its
          lag under the HTTP reserve load, appendfsync always and everysec slices alternating;
hot       hot SKU flash sale: thousands of keep-alive buyers (wrk, ``bench/load/wrk/hot.lua``)
          race for a few hundred units, on stocksync and on the row-lock peer; units sold are
          read back from each store;
spread    spread load over many SKUs and locations, per operation, on both systems;
scale     Redis memory per position and per hold, and spread latency, by catalogue size;
warehouse a generated snapshot file through ``stocksync connector run warehouse``, beside csv
          parsing + pipelined HSETs of the same rows;
webhooks  Shopify ``orders/create`` deliveries through a served API with the connector
          configured, beside plain ``POST /v1/reservations``.

The rest: ``bench/suite.py`` runs the sections in order with their servers and writes the notes;
``bench/harness/`` is the shared machinery (profiles, servers, PostgreSQL, CPU accounting,
statistics, seeding, samplers, the result table); ``bench/load/`` the load generators, their
drivers and wrk with its Lua scripts; ``bench/peer/`` the row-lock peer on PostgreSQL.

Every scenario is paired with a baseline measured in the same run on the same machine, and the
report shows ratios: absolute numbers depend on a shared, noisy 2-core host.
"""
