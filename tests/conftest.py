"""Shared fixtures: one real sqlite MLflow store per session, one experiment per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from configurable_agents.config.loader import ENV_OVERRIDES
from configurable_agents.observability.diagnostics import TESTING_ENV, take_recorded_errors
from tests.servers import MlflowServer, PostgresCluster, PostgresUnavailable, start_postgres

IN_CI = os.environ.get("CI", "").lower() == "true"

# Tests never touch the network: keep tiktoken and MLflow from trying.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
os.environ.pop("CONFIGURABLE_AGENTS_MLFLOW", None)
# An internal error of our own code (capture, facts) fails the test instead of being
# only counted (MLflow's is_testing() pattern); tests that provoke one on purpose say so
# with @pytest.mark.internal_errors.
os.environ[TESTING_ENV] = "1"
# Spool files of tests never land in the user's ~/.cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="ca-test-cache-")
for _var in list(os.environ):
    if _var.startswith("CONFIGURABLE_AGENTS_MLFLOW_"):
        os.environ.pop(_var)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Tracking URI of a sqlite store shared by the session (creating one takes ~1.5 s)."""
    # tmpfs when available: every MLflow write is a sqlite commit (fsync).
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        root = Path(tempfile.mkdtemp(prefix="ca-mlflow-", dir=shm))
    else:
        root = tmp_path_factory.mktemp("mlflow-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(uri).search_experiments(max_results=1)  # create the schema once
    yield uri
    if root.parent == Path("/dev/shm"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def experiment_name(request: pytest.FixtureRequest) -> str:
    """A unique experiment per test isolates tests that share the session store."""
    return f"{request.node.name[:60]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def mlflow_client(mlflow_store: str) -> MlflowClient:
    return MlflowClient(mlflow_store)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cwd; ``ls`` after the test must show only the YAML files the test wrote."""
    monkeypatch.chdir(tmp_path)
    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster | None]:
    """One private PostgreSQL cluster per session (tests create a database each).

    None where PostgreSQL is not installed, so a laptop without it can still run the rest;
    in CI (which installs it) that is a failure, never a skip.
    """
    try:
        cluster = start_postgres()
    except PostgresUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI must run the PostgreSQL tests: {exc}")
        yield None
        return
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real `mlflow server` on a sqlite store, shared by the session (~5 s to start);
    each test uses its own experiment."""
    root = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "internal_errors: the test provokes internal errors of ours on purpose"
    )


@pytest.fixture(autouse=True)
def _fail_on_internal_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    take_recorded_errors()
    yield
    errors = take_recorded_errors()
    if errors and request.node.get_closest_marker("internal_errors") is None:
        pytest.fail("internal error(s) of configurable-agents during the test:\n"
                    + "\n".join(errors), pytrace=False)


# `make test-fast` (-m "not services and not slow") skips what starts a server process:
# tests using these fixtures, and modules that start an `mlflow server`, PostgreSQL or
# Prometheus themselves. Marked here, by what a test uses, so a new test cannot forget it.
SERVICE_FIXTURES = frozenset({"postgres_cluster", "postgres_uri", "mlflow_server",
                              "team_server", "s3_team_server"})
SERVICE_STARTERS = ("MlflowServer", "PrometheusServer", "start_postgres")


# ... and what takes seconds on its own (over ~3 s on the 2-core CI machine, from
# `pytest --durations=40`): fresh interpreters, thousand-node graphs, whole journeys, the
# real-world programs. Whole modules by file name, single tests by name.
SLOW_MODULES = frozenset({
    "test_mlflow_import_race.py", "test_robustness.py", "test_eval_e2e.py",
    "test_docs_site.py", "test_dataset_export.py", "test_dspy_optimize.py",
    "test_benchmarks_smoke.py", "test_production_sampling.py", "test_retention.py",
    "test_report_readers.py", "test_trust_eval.py", "test_hardening_names.py",
    "test_hardening_fuzz.py", "test_report_untrusted.py",
})
SLOW_TESTS = frozenset({
    "test_asyncio_gather_100_ainvoke", "test_32_threads_share_one_handler",
    "test_env_flag_attaches_handler_with_zero_code", "test_state_is_freed_after_export",
    "test_untrusted_metadata_and_names_are_plain_attribute_data",
    "test_langchain_autolog_on_skips_our_trace",
    "test_3000_invocations_with_metadata_labels_keep_series_and_scrape_bounded",
    "test_adversarial_megabyte_strings_finish_quickly",
    "test_five_megabyte_string_finishes_quickly",
    "test_disk_full_leaves_no_tmp_debris_and_stale_tmp_is_cleaned",
    "test_one_scrape_shows_the_sum_of_two_worker_processes",
    "test_promtool_unit_tests_cover_every_shipped_rule",
    "test_any_metadata_text_is_one_escaped_label_value",
    "test_log_system_metrics_attaches_mlflow_monitor",
})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        starts = module is not None and any(hasattr(module, n) for n in SERVICE_STARTERS)
        if starts or SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)
        path = getattr(item, "path", None)
        if path is not None and (path.name in SLOW_MODULES or path.parent.name == "realworld"
                                 or getattr(item, "originalname", item.name) in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
