from stocksync.cli.main import app

app(prog_name="stocksync")
