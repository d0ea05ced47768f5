# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test reliability dev sandbox bench

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml sandbox/setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]" -e ./sandbox
	touch $@

demo: setup
	$(BIN)/sync-pipelines demo

# The suite at its pinned afternoon, then its time-sensitive tests at 00:05, 23:55 and on the
# first of a month (sync_pipelines_tests/pinned_clock.py).
test: setup
	$(BIN)/python -m pytest -n 2 --durations=15
	$(BIN)/python sync_pipelines_tests/run_at_edges.py -n 2

# The long fault-injection and kill suite (a few minutes; needs PostgreSQL): prints its figures.
reliability: setup
	$(BIN)/python -m pytest -q -s sync_pipelines_tests/reliability/long_suite.py

dev: setup
	$(BIN)/dagster dev -w workspace.yaml

sandbox: setup
	$(BIN)/sync-pipelines sandbox

bench: setup
	$(BIN)/python bench/slack_index_bench.py
	$(BIN)/python bench/source_throughput.py
