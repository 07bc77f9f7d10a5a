# The two set-up commands of the README: `make demo` and `make test`. Both work on a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint format migrate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## make demo: install, build a fresh demo database (demo-data/, SQLite) with months of history, and run
## the sandbox internet, the monitor and the web server with live notices (Ctrl-C stops them all).
## DEMO_ARGS passes options, e.g. DEMO_ARGS="--addrport 127.0.0.1:8001 --deadline 300" (manage.py demo --help).
demo: $(STAMP)
	DEMO=on DEBUG=on DATABASE_URL=sqlite:///demo-data/demo.sqlite3 $(BIN)/python manage.py demo $(DEMO_ARGS)

## make test: install and run the test suite (DATABASE_URL selects PostgreSQL).
test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

## make bench: the performance benchmarks (see bench/README.md).
bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
