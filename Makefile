# One command to run the engine, one to run the tests. Everything goes into ./.venv.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install install-dev run demo test lint unit bench load clean

# `make run` needs only the engine; the tests, benchmarks and load tests need the extras
# (Playwright alone is a third of them).
install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e ".[test,load]"
	touch $(VENV)/.installed $@

run: install  ## install and start the engine on the embedded default, with demo data
	$(BIN)/stocksync serve --demo

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install-dev lint  ## install, lint, and run every test
	$(BIN)/pytest

unit: install-dev
	$(BIN)/pytest tests/unit

bench: install-dev  ## benchmarks against same-run baselines and the row-lock peer, ~5 min (BENCH_ARGS=--quick, --only SECTION); http, ledger and hot need wrk (apt-get install wrk)
	$(BIN)/python -m bench $(BENCH_ARGS)

load: install-dev  ## locust channel mix against a running engine (see loadtests/README.md)
	$(BIN)/locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:8000

clean:
	rm -rf $(VENV) .stocksync .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts
