# One command to run the engine, one to run the tests. Everything goes into ./.venv.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install run demo test lint unit bench load clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,load]"
	touch $@

run: install  ## install and start the engine on the embedded default, with demo data
	$(BIN)/stocksync serve --demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install lint  ## install, lint, and run every test
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

bench: install  ## benchmarks against same-run baselines and the row-lock peer, ~5 min (BENCH_ARGS=--quick, --only SECTION); http, ledger and hot need wrk (apt-get install wrk)
	$(BIN)/python -m bench $(BENCH_ARGS)

load: install  ## locust channel mix against a running engine (see loadtests/README.md)
	$(BIN)/locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:8000

clean:
	rm -rf $(VENV) .stocksync .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts
