# Both main targets bootstrap .venv on a fresh machine, then run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench ui clean team-stack

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m configurable_agents.demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,bench]"
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.bench_durability

# PostgreSQL + S3 (moto) + mlflow server --workers 4 on 127.0.0.1, from tests/servers.py.
team-stack: $(STAMP)
	$(BIN)/python scripts/team_stack.py --workers 4

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db

clean:
	rm -rf $(VENV) mlflow.db mlruns .pytest_cache .ruff_cache
