# cityhub — `make run` serves the hub on its embedded default (SQLite, config.yaml) with
# simulated province, county and bank peers around it; `make serve` runs the hub alone;
# `make test` runs the whole suite. Each creates and fills its own virtualenv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080
# pytest-xdist workers for `make test` (each has its own files and, with
# HUB_TEST_DATABASE_URL, its own PostgreSQL database <name>_gwN); 0 runs in one process.
TEST_WORKERS ?= 2

.PHONY: run serve test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null

$(VENV)/.run-deps: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[postgres]'
	touch $@

$(VENV)/.test-deps: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test,postgres]'
	touch $@ $(VENV)/.run-deps

run: $(VENV)/.run-deps
	$(BIN)/python hub.py init-secrets
	$(BIN)/python hub.py migrate
	$(BIN)/python hub.py demo --host $(HOST) --port $(PORT)

serve: $(VENV)/.run-deps
	$(BIN)/python hub.py init-secrets
	$(BIN)/python hub.py migrate
	$(BIN)/python hub.py serve --host $(HOST) --port $(PORT)

test: $(VENV)/.test-deps
	tests/provision.sh
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .

bench: $(VENV)/.test-deps
	$(BIN)/python bench/delivery.py

clean:
	rm -rf $(VENV) var/ .pytest_cache
