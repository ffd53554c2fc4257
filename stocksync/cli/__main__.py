"""`python -m stocksync.cli`: the same commands as the `stocksync` script."""

from stocksync.cli.main import app

app(prog_name="stocksync")
