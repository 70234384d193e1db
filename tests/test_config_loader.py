"""Loading the ``config:`` block from YAML files and dicts, with env overrides.

What a user sees is one ``file:line: dotted.path: message`` line per problem; these tests
assert that text. Validation must never create an MLflow store: every test that loads runs
in an empty working directory and checks it stays empty.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from configurable_agents.config import (
    ConfigError,
    GlobalConfig,
    MLFlowConfig,
    ObservabilityConfig,
    apply_env_overrides,
    load_global_config,
    read_yaml,
)
from configurable_agents.config.loader import (
    ENV_OVERRIDES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    ConfigInputError,
)

SECRET = "S3cr3t-Pa55"

ADR_V01_BLOCK = """\
config:
  observability:
    mlflow:
      enabled: true
      tracking_uri: "file://./mlruns"  # Local file storage
      experiment_name: "production_workflows"
"""

WORKFLOW_HEAD = """\
schema_version: "1.0"
flow:
  name: article_writer
state:
  fields:
    topic: {type: str, required: true}
"""


def write(directory: Path, text: str, name: str = "workflow.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def assert_nothing_created(directory: Path) -> None:
    created = sorted(p.name for p in directory.iterdir() if p.suffix != ".yaml")
    assert created == [], f"validation created {created}"
    assert not (directory / "mlflow.db").exists()
    assert not (directory / "mlruns").exists()


def load_error(source: object) -> str:
    with pytest.raises(ConfigError) as exc:
        load_global_config(source)  # type: ignore[arg-type]
    return str(exc.value)


# ------------------------------------------------------------------ the ADR's blocks


def test_adr_v01_block_verbatim_from_a_file(workdir: Path) -> None:
    path = write(workdir, ADR_V01_BLOCK)
    config = load_global_config(path)
    mlflow = config.mlflow
    assert mlflow is not None
    assert mlflow.enabled is True
    assert mlflow.tracking_uri == "file://./mlruns"
    assert mlflow.experiment_name == "production_workflows"
    # Everything else keeps its default.
    assert mlflow.model_dump(exclude={"enabled", "tracking_uri", "experiment_name"}) == (
        MLFlowConfig().model_dump(exclude={"enabled", "tracking_uri", "experiment_name"})
    )
    assert config.llm is None
    assert config.execution is None
    assert_nothing_created(workdir)


def test_adr_v01_block_inside_a_whole_workflow_file(workdir: Path) -> None:
    path = write(workdir, WORKFLOW_HEAD + "nodes: []\n" + ADR_V01_BLOCK)
    assert load_global_config(path).mlflow.experiment_name == "production_workflows"  # type: ignore[union-attr]
    assert_nothing_created(workdir)


def test_adr_v01_block_as_a_dict(workdir: Path) -> None:
    data = {
        "config": {
            "observability": {
                "mlflow": {
                    "enabled": True,
                    "tracking_uri": "file://./mlruns",
                    "experiment_name": "production_workflows",
                }
            }
        }
    }
    assert load_global_config(data) == load_global_config(write(workdir, ADR_V01_BLOCK))


@pytest.mark.parametrize(
    ("block", "field", "expected"),
    [
        (
            """\
            config:
              observability:
                mlflow:
                  retention_days: 90  # Auto-cleanup old runs
            """,
            "retention_days",
            90,
        ),
        (
            """\
            config:
              observability:
                mlflow:
                  redact_pii: true  # Sanitize inputs/outputs
            """,
            "redact_pii",
            True,
        ),
        (
            """\
            config:
              observability:
                mlflow:
                  experiment_name: "{tenant_id}_workflows"  # Isolated per customer
            """,
            "experiment_name",
            "{tenant_id}_workflows",
        ),
        (
            """\
            config:
              observability:
                mlflow:
                  tracking_uri: "postgresql://user:pass@host/db"  # Shared team server
                  # or: "s3://bucket/mlruns"  # Cloud storage
                  # or: "databricks://workspace"  # Managed MLFlow
            """,
            "tracking_uri",
            "postgresql://user:pass@host/db",
        ),
    ],
)
def test_adr_enterprise_hook_blocks(
    workdir: Path, block: str, field: str, expected: object
) -> None:
    config = load_global_config(write(workdir, block))
    assert getattr(config.mlflow, field) == expected
    assert config.mlflow.enabled is False  # type: ignore[union-attr]  # hooks don't switch it on
    assert_nothing_created(workdir)


def test_bare_config_block_without_config_key(workdir: Path) -> None:
    path = write(
        workdir,
        """\
        llm: {provider: demo, model: demo-model, temperature: 0}
        execution: {timeout: 5}
        observability: {mlflow: {enabled: true}}
        """,
    )
    config = load_global_config(path)
    assert config.llm.provider == "demo"  # type: ignore[union-attr]
    assert config.execution.timeout == 5.0  # type: ignore[union-attr]
    assert config.mlflow.enabled is True  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "config:\n", WORKFLOW_HEAD])
def test_no_config_gives_the_disabled_default(workdir: Path, text: str) -> None:
    assert load_global_config(write(workdir, text)) == GlobalConfig()


# ------------------------------------------------------------------ unknown keys


def test_typo_message_names_path_key_suggestion_and_line(workdir: Path) -> None:
    path = write(
        workdir,
        WORKFLOW_HEAD
        + """\
config:
  observability:
    mlflow:
      enabled: true
      experiment_nme: "production_workflows"
""",
    )
    message = load_error(path)
    assert message.count("\n") == 0  # one problem, one line
    assert message.startswith(
        f"{path}:11: config.observability.mlflow: unknown key 'experiment_nme' "
        "(did you mean experiment_name?); valid keys are: "
        + ", ".join(sorted(MLFlowConfig.model_fields))
    )
    assert_nothing_created(workdir)


def test_typo_in_a_dict_names_the_path(workdir: Path) -> None:
    message = load_error({"config": {"observability": {"mlfow": {"enabled": True}}}})
    assert message.startswith(
        "<dict>: config.observability: unknown key 'mlfow' (did you mean mlflow?)"
    )


def test_typo_at_the_config_level(workdir: Path) -> None:
    path = write(workdir, "config:\n  llm: {}\n  observabilty:\n    mlflow: {}\n")
    assert load_error(path).startswith(
        f"{path}:3: config: unknown key 'observabilty' (did you mean observability?)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "flow: {name: x}\nconfg:\n  llm: {}\n",
            ":2: unknown top-level key 'confg' (did you mean config?)",
        ),
        (
            "flow: {name: x}\nobservability:\n  mlflow: {enabled: true}\n",
            ":2: observability: belongs under the 'config:' block (config.observability)",
        ),
    ],
)
def test_misspelt_or_misplaced_config_block_is_not_silently_ignored(
    workdir: Path, text: str, expected: str
) -> None:
    path = write(workdir, text)
    assert load_error(path) == f"{path}{expected}"


@pytest.mark.parametrize(
    ("data", "block"),
    [
        ({"enabled": True, "experiment_name": "x"}, "config.observability.mlflow"),
        ({"mlflow": {"enabled": True}}, "config.observability"),
    ],
)
def test_a_lower_level_dict_is_pointed_to_its_place(data: dict[str, object], block: str) -> None:
    assert f"belong under '{block}'; nest them there" in load_error(data)


# ------------------------------------------------------------------ one clear error per problem


@pytest.mark.parametrize(
    ("mlflow_block", "expected"),
    [
        (
            "retention_days: -7",
            ":4: config.observability.mlflow.retention_days: "
            "Input should be greater than or equal to 1 (got -7)",
        ),
        (
            "retention_days: 0",
            ":4: config.observability.mlflow.retention_days: "
            "Input should be greater than or equal to 1 (got 0)",
        ),
        (
            'experiment_name: ""',
            ":4: config.observability.mlflow.experiment_name: "
            "experiment_name is empty; give a name such as 'configurable_agents'",
        ),
        (
            "enabled: maybe",
            ":4: config.observability.mlflow.enabled: "
            "Input should be a valid boolean, unable to interpret input (got 'maybe')",
        ),
        (
            "retention_days: ninety",
            ":4: config.observability.mlflow.retention_days: "
            "Input should be a valid integer, unable to parse string as an integer (got 'ninety')",
        ),
        (
            "tracking_uri: ftp://example.com/runs",
            ":4: config.observability.mlflow.tracking_uri: unsupported tracking_uri scheme 'ftp' "
            "in 'ftp://example.com/runs'; use one of sqlite:///path.db, "
            "postgresql://user:pass@host/db, http(s)://host:port, file:///dir",
        ),
        (
            "flush_timeout_s: 0",
            ":4: config.observability.mlflow.flush_timeout_s: "
            "Input should be greater than 0 (got 0)",
        ),
    ],
)
def test_each_bad_value_gets_one_line_naming_field_and_fix(
    workdir: Path, mlflow_block: str, expected: str
) -> None:
    path = write(workdir, f"config:\n  observability:\n    mlflow:\n      {mlflow_block}\n")
    assert load_error(path) == f"{path}{expected}"
    assert_nothing_created(workdir)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "config:\n  llm:\n    temperature: 5\n",
            ":3: config.llm.temperature: Input should be less than or equal to 2 (got 5)",
        ),
        (
            "config:\n  execution: 3\n",
            ":2: config.execution: "
            "Input should be a valid dictionary or instance of ExecutionConfig (got 3)",
        ),
        (
            "config:\n  observability:\n    mlflow: yes\n",
            ":3: config.observability.mlflow: "
            "Input should be a valid dictionary or instance of MLFlowConfig (got True)",
        ),
    ],
)
def test_wrong_types_at_other_levels(workdir: Path, text: str, expected: str) -> None:
    path = write(workdir, text)
    assert load_error(path) == f"{path}{expected}"


def test_several_problems_are_listed_in_file_order(workdir: Path) -> None:
    path = write(
        workdir,
        """\
        config:
          observability:
            mlflow:
              retention_days: -3
              tracking_uri: "gopher://host"
              experiment_name: "  "
        """,
    )
    lines = load_error(path).splitlines()
    assert [line.split(": ")[0:2] for line in lines] == [
        [f"{path}:4", "config.observability.mlflow.retention_days"],
        [f"{path}:5", "config.observability.mlflow.tracking_uri"],
        [f"{path}:6", "config.observability.mlflow.experiment_name"],
    ]


def test_invalid_uri_error_never_shows_the_password(workdir: Path) -> None:
    path = write(
        workdir,
        f"config:\n  observability:\n    mlflow:\n"
        f"      tracking_uri: 'mongodb://admin:{SECRET}@db:27017/x'\n",
    )
    message = load_error(path)
    assert SECRET not in message
    assert (
        "unsupported tracking_uri scheme 'mongodb' in 'mongodb://admin:***@db:27017/x'" in message
    )


# ------------------------------------------------------------------ malformed files


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "config:\n  observability:\n    mlflow: {enabled: true\n",
            ":4: invalid YAML: expected ',' or '}', but got '<stream end>'",
        ),
        (
            "config:\n  observability:\n    mlflow:\n      enabled: true\n"
            "     experiment_name: x\n",  # one space short
            ":5: invalid YAML: expected <block end>, but found '<block mapping start>'",
        ),
        (
            "config:\n\ttab: 1\n",
            ":2: invalid YAML: found character '\\t' that cannot start any token",
        ),
        (
            "config:\n  observability:\n    mlflow:\n      enabled: true\n      enabled: false\n",
            ":5: invalid YAML: duplicate key 'enabled' (first on line 4); keep only one",
        ),
    ],
)
def test_malformed_yaml_names_file_and_line(workdir: Path, text: str, expected: str) -> None:
    path = write(workdir, text)
    assert load_error(path) == f"{path}{expected}"
    assert_nothing_created(workdir)


def test_missing_file_and_wrong_top_level(workdir: Path) -> None:
    assert load_error(workdir / "nope.yaml") == f"{workdir / 'nope.yaml'}: file not found"
    listed = write(workdir, "- a\n- b\n")
    assert load_error(listed) == f"{listed}: expected a mapping at the top level, got list"
    scalar_config = write(workdir, "config: 5\n", "scalar.yaml")
    assert load_error(scalar_config) == (
        f"{scalar_config}: config: expected a mapping of settings, got int"
    )


def test_read_yaml_keeps_key_lines(workdir: Path) -> None:
    data = read_yaml(write(workdir, "a: 1\nb:\n  c: 2\n"))
    assert data == {"a": 1, "b": {"c": 2}}
    assert data.lines == {"a": 1, "b": 2}  # type: ignore[attr-defined]
    assert data["b"].lines == {"c": 3}


# ------------------------------------------------------------------ hostile or broken files

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
config:
  observability:
    mlflow:
      enabled: true
      experiment_name: *h
"""


def input_error(path: Path) -> str:
    with pytest.raises(ConfigInputError) as exc:
        read_yaml(path)
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_non_utf8_file_names_the_line_and_byte(workdir: Path) -> None:
    path = workdir / "latin1.yaml"
    path.write_bytes("config:\n  observability:\n    mlflow: {experiment_name: café}\n".encode(
        "latin-1"))
    assert input_error(path) == (
        f"{path}:3: not UTF-8 text (byte 0xe9 at offset 58); save the file as UTF-8"
    )
    with pytest.raises(ConfigInputError):  # the global-config loader reads it the same way
        load_global_config(path)
    assert_nothing_created(workdir)


def test_billion_laughs_is_refused_before_it_is_expanded(workdir: Path) -> None:
    path = write(workdir, BILLION_LAUGHS)
    assert input_error(path) == (
        f"{path}:1: YAML limit: more than {MAX_YAML_NODES} YAML nodes once aliases are "
        "expanded (an alias bomb?)"
    )
    assert_nothing_created(workdir)


def test_recursive_alias_and_deep_nesting_are_refused(workdir: Path) -> None:
    recursive = write(workdir, "config: &c {observability: {mlflow: *c}}\n")
    assert input_error(recursive).endswith(
        "YAML limit: an alias refers to a node that contains it (recursive alias)")
    depth = MAX_YAML_DEPTH + 1
    deep = write(workdir, "config: " + "[" * depth + "]" * depth + "\n", "deep.yaml")
    assert input_error(deep) == (
        f"{deep}:1: YAML limit: nested more than {MAX_YAML_DEPTH} levels deep"
    )


def test_ordinary_aliases_still_load(workdir: Path) -> None:
    path = write(workdir, """\
        defaults: &defaults {enabled: true, experiment_name: shared}
        config:
          observability:
            mlflow: {<<: *defaults, experiment_name: mine}
        """)
    mlflow = load_global_config(path, env=False).mlflow
    assert mlflow is not None
    assert (mlflow.enabled, mlflow.experiment_name) == (True, "mine")


def test_control_character_is_one_line_naming_the_line(workdir: Path) -> None:
    path = write(workdir, 'config:\n  llm: {model: "a\x01b"}\n')
    assert load_error(path) == (
        f"{path}:2: invalid YAML: unacceptable character #x0001 (special characters are not "
        "allowed)"
    )


# ------------------------------------------------------------------ environment overrides


def test_env_overrides_win_over_file_values(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(workdir, ADR_V01_BLOCK + "      retention_days: 30\n")
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_ENABLED", "false")
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_TRACKING_URI", "sqlite:///override.db")
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_EXPERIMENT_NAME", "from_env")
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_RUN_NAME", "{workflow_name}_{date}")
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_ASYNC_LOGGING", "0")
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_LOG_ARTIFACTS", "no")
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_LOG_TRACES", "off")
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_REDACT_PII", "true")
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_RETENTION_DAYS", "7")
    mlflow = load_global_config(path).mlflow
    assert mlflow is not None
    assert (mlflow.enabled, mlflow.tracking_uri, mlflow.experiment_name) == (
        False,
        "sqlite:///override.db",
        "from_env",
    )
    assert mlflow.run_name == "{workflow_name}_{date}"
    assert (mlflow.async_logging, mlflow.log_artifacts, mlflow.log_traces) == (False, False, False)
    assert (mlflow.redact_pii, mlflow.retention_days) == (True, 7)
    # env=False reads the file alone.
    assert load_global_config(path, env=False).mlflow.retention_days == 30  # type: ignore[union-attr]
    assert_nothing_created(workdir)


def test_file_values_without_an_override_survive(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_EXPERIMENT_NAME", "from_env")
    mlflow = load_global_config(write(workdir, ADR_V01_BLOCK)).mlflow
    assert mlflow.enabled is True  # type: ignore[union-attr]
    assert mlflow.tracking_uri == "file://./mlruns"  # type: ignore[union-attr]
    assert mlflow.experiment_name == "from_env"  # type: ignore[union-attr]


def test_env_alone_switches_mlflow_on(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_ENABLED", "true")
    config = load_global_config(write(workdir, "config:\n  llm: {provider: demo}\n"))
    assert config.mlflow == MLFlowConfig(enabled=True)
    assert config.llm.provider == "demo"  # type: ignore[union-attr]


def test_empty_env_values_are_ignored(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_EXPERIMENT_NAME", "")
    monkeypatch.setenv("CONFIGURABLE_AGENTS_MLFLOW_ENABLED", "")
    assert load_global_config(write(workdir, ADR_V01_BLOCK)).mlflow.experiment_name == (  # type: ignore[union-attr]
        "production_workflows"
    )


def test_apply_env_overrides_with_an_explicit_environ() -> None:
    base = GlobalConfig(observability=ObservabilityConfig(mlflow=MLFlowConfig(queue_size=5)))
    assert apply_env_overrides(base, {}) is base
    result = apply_env_overrides(base, {"CONFIGURABLE_AGENTS_MLFLOW_ENABLED": "1", "OTHER": "x"})
    assert result.mlflow == MLFlowConfig(queue_size=5, enabled=True)
    assert base.mlflow.enabled is False  # type: ignore[union-attr]  # the input is not mutated


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        (
            "CONFIGURABLE_AGENTS_MLFLOW_ENABLED",
            "maybe",
            "environment: CONFIGURABLE_AGENTS_MLFLOW_ENABLED: "
            "Input should be a valid boolean, unable to interpret input (got 'maybe')",
        ),
        (
            "CONFIGURABLE_AGENTS_MLFLOW_RETENTION_DAYS",
            "0",
            "environment: CONFIGURABLE_AGENTS_MLFLOW_RETENTION_DAYS: "
            "Input should be greater than or equal to 1 (got '0')",
        ),
        (
            "CONFIGURABLE_AGENTS_MLFLOW_EXPERIMENT_NAME",
            "   ",
            "environment: CONFIGURABLE_AGENTS_MLFLOW_EXPERIMENT_NAME: "
            "experiment_name is empty; give a name such as 'configurable_agents'",
        ),
        (
            "CONFIGURABLE_AGENTS_MLFLOW_TRACKING_URI",
            f"redis://user:{SECRET}@cache:6379",
            "environment: CONFIGURABLE_AGENTS_MLFLOW_TRACKING_URI: unsupported tracking_uri "
            "scheme 'redis' in 'redis://user:***@cache:6379'; use one of sqlite:///path.db, "
            "postgresql://user:pass@host/db, http(s)://host:port, file:///dir",
        ),
    ],
)
def test_invalid_env_values_name_the_env_var(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    message = load_error(write(workdir, ADR_V01_BLOCK))
    assert message == expected
    assert SECRET not in message
    assert_nothing_created(workdir)


def test_every_env_var_maps_to_a_real_field() -> None:
    assert set(ENV_OVERRIDES.values()) <= set(MLFlowConfig.model_fields)
    assert all(var.startswith("CONFIGURABLE_AGENTS_MLFLOW_") for var in ENV_OVERRIDES)
    assert ENV_OVERRIDES["CONFIGURABLE_AGENTS_MLFLOW_TRACKING_URI"] == "tracking_uri"
    assert os.environ.get("CONFIGURABLE_AGENTS_MLFLOW_ENABLED") is None
