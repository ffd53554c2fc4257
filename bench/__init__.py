"""stocksync benchmark suite: ``.venv/bin/python -m bench`` (``--quick`` for a ~40 s smoke run).

Starts its own servers on 127.0.0.1 (a bundled redis-server with the AOF on, and
``stocksync serve`` subprocesses), measures, stops them all, prints a table and writes it to
``bench/results/latest.{json,md}``:

(a) script path: ``RedisStockStore.reserve``/``.release`` through redis.asyncio, beside INCR
    round trips on the same kind of client and pool (``bench.script_path``);
(b) HTTP path at saturation with wrk, beside GET /healthz on the same server
    (``bench.http_path``, scripts in ``bench/wrk/``);
(c) open-loop latency at a fixed offered rate from several generator processes
    (``bench.open_loop``, ``bench.loadgen``).

Every scenario is paired with a baseline measured in the same run on the same machine, and the
report shows ratios: absolute numbers depend on a shared, noisy 2-core host.
"""
