# Two commands set up everything: `make demo` runs the product, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck check bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/inbox demo

# pytest-xdist: one worker per core (at most 4). Much of the suite waits on subprocesses, sockets and
# PostgreSQL rather than computing, so two workers on two cores take about 55 % of the serial time.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy inbox connectors
	$(BIN)/pytest -q -n auto --maxprocesses 4

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy inbox connectors

# Benchmarks (docs/benchmarks.md): every scenario on SQLite and PostgreSQL, results in bench/results/latest.json.
# The full run takes a long time on a small machine; bench-quick uses smaller sizes (CI runs a tiny size).
bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
