# Both main targets bootstrap .venv on a fresh machine, then run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench ui clean team-stack docs docs-build

# First run: ~2-3 minutes of downloads; pip's progress says what it is installing.
$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) with $(PY)"
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/python -m pip install --upgrade pip --progress-bar off
	@echo "==> installing configurable-agents and its dev extras (MLflow, LangGraph, DSPy, test tools)"
	$(BIN)/python -m pip install -e ".[dev,docs]" --progress-bar off
	touch $(STAMP)
	@echo "==> $(VENV) ready"

demo: $(STAMP)
	$(BIN)/python -m configurable_agents.demo

# The whole suite: starts PostgreSQL, mlflow server and Prometheus (8-20 minutes).
test: $(STAMP)
	$(BIN)/python -m pytest

# Everything that needs no server process and no whole-journey walk (marked in tests/conftest.py).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not services and not slow" -n auto --durations=10

# The docs site (MkDocs + Material) on http://127.0.0.1:8000; the CLI and config reference
# pages are generated at build time (scripts/mkdocs_hooks.py). docs-build: what CI checks.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

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
	rm -rf $(VENV) mlflow.db mlruns .pytest_cache .ruff_cache site
