"""The config models on their own: defaults, unknown keys, ranges, URI checks, masking.

Errors are asserted by exact text fragments: the message is the user interface.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from configurable_agents.config import (
    DEFAULT_TRACKING_URI,
    ExecutionConfig,
    GlobalConfig,
    LLMConfig,
    MLFlowConfig,
    ObservabilityConfig,
    redact_uri,
    redacted_dump,
)
from configurable_agents.config.redaction_config import RedactionConfig
from configurable_agents.config.schema import SUPPORTED_TRACKING_SCHEMES, resolved_mlflow

SECRET = "S3cr3t-Pa55"


def only_message(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    """The single error's message (asserting there is exactly one)."""
    errors = exc.value.errors(include_url=False)
    assert len(errors) == 1, errors
    return errors[0]["msg"].removeprefix("Value error, ")


# ------------------------------------------------------------------ defaults

MLFLOW_DEFAULTS = {
    # ADR-011 fields (tracking_uri differs: MLflow 3 refuses ./mlruns by default).
    "enabled": False,
    "tracking_uri": "sqlite:///mlflow.db",
    "experiment_name": "configurable_agents",
    "run_name": None,
    "log_artifacts": True,
    "log_system_metrics": False,
    "retention_days": None,
    "redact_pii": False,
    # What the handler needs beyond the ADR.
    "log_traces": True,
    "async_logging": True,
    "durability": "memory",
    "request_timeout_s": 15.0,
    "retry_budget_s": 8.0,
    "flush_timeout_s": 10.0,
    "queue_size": 1000,
    "max_param_chars": 6000,
    "max_artifact_bytes": 5_000_000,
    "tags": {},
    "tag_metadata_keys": [],
    "pricing": None,  # user prices: a mapping or a YAML path
    "spool_dir": None,  # ~/.cache/configurable-agents/spool/<uri hash>
    "spool_max_bytes": 1 << 30,  # 1 GiB; past it new workflows are dropped (counted)
    "block_on_full": False,
    "quarantine_experiment": "configurable_agents_quarantine",
    "tenant_fail_closed": False,
    "register_prompts": False,  # Prompt Registry (evaluation issue)
    "redaction": RedactionConfig(),
    # Production traffic (issue #17): writer threads, sampling and its tail rules.
    "export_workers": None,  # by URI: see resolved_export_workers
    "sample_rate": 1.0,
    "sample_keep_cost_usd": None,
    "sample_keep_retried": True,
    "rollup_bucket_s": 60,
}


@pytest.mark.parametrize(("field", "default"), sorted(MLFLOW_DEFAULTS.items()))
def test_mlflow_config_default(field: str, default: object) -> None:
    value = getattr(MLFlowConfig(), field)
    assert value == default
    assert type(value) is type(default)


def test_every_mlflow_field_has_a_tested_default() -> None:
    # A new field must get a default (MLFlowConfig() stays valid) and a line above.
    assert set(MLFlowConfig.model_fields) == set(MLFLOW_DEFAULTS)
    assert DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"


def test_mutable_defaults_are_not_shared() -> None:
    first, second = MLFlowConfig(), MLFlowConfig()
    first.tags["team"] = "a"
    first.tag_metadata_keys.append("user_id")
    assert second.tags == {}
    assert second.tag_metadata_keys == []


def test_other_models_defaults() -> None:
    assert GlobalConfig().model_dump() == {"llm": None, "execution": None, "observability": None}
    assert ObservabilityConfig().mlflow is None
    assert LLMConfig().model_dump() == {
        "provider": "google",
        "model": "gemini-2.5-flash",
        "temperature": 0.7,
        "max_tokens": None,
    }
    assert ExecutionConfig().model_dump() == {"timeout": 120.0, "max_retries": 3}


def test_global_config_nests_the_adr_way() -> None:
    config = GlobalConfig.model_validate(
        {
            "llm": {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.2},
            "execution": {"timeout": 30, "max_retries": 0},
            "observability": {"mlflow": {"enabled": True, "experiment_name": "exp"}},
        }
    )
    assert config.llm == LLMConfig(provider="openai", model="gpt-4o-mini", temperature=0.2)
    assert config.execution == ExecutionConfig(timeout=30.0, max_retries=0)
    assert config.mlflow is config.observability.mlflow  # type: ignore[union-attr]
    assert config.mlflow.enabled is True  # type: ignore[union-attr]
    assert config.mlflow.experiment_name == "exp"  # type: ignore[union-attr]


def test_resolved_mlflow_from_every_level() -> None:
    block = MLFlowConfig(enabled=True)
    assert resolved_mlflow(block) is block
    assert resolved_mlflow(ObservabilityConfig(mlflow=block)) is block
    assert resolved_mlflow(GlobalConfig(observability=ObservabilityConfig(mlflow=block))) is block
    for empty in (None, GlobalConfig(), ObservabilityConfig(), GlobalConfig(observability={})):
        assert resolved_mlflow(empty) == MLFlowConfig()
        assert resolved_mlflow(empty).enabled is False


# ------------------------------------------------------------------ unknown keys


@pytest.mark.parametrize(
    ("model", "data", "fragment"),
    [
        (
            MLFlowConfig,
            {"experiment_nme": "x"},
            "unknown key 'experiment_nme' (did you mean experiment_name?); valid keys are: ",
        ),
        (MLFlowConfig, {"retention": 3}, "unknown key 'retention' (did you mean retention_days?)"),
        (
            MLFlowConfig,
            {"trackinguri": "x"},
            "unknown key 'trackinguri' (did you mean tracking_uri?)",
        ),
        (ObservabilityConfig, {"mlfow": {}}, "unknown key 'mlfow' (did you mean mlflow?)"),
        (
            GlobalConfig,
            {"observabilty": {}},
            "unknown key 'observabilty' (did you mean observability?)",
        ),
        (LLMConfig, {"temprature": 1}, "unknown key 'temprature' (did you mean temperature?)"),
        (ExecutionConfig, {"max_retry": 1}, "unknown key 'max_retry' (did you mean max_retries?)"),
    ],
)
def test_unknown_key_names_the_nearest_valid_key(
    model: type, data: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    assert fragment in only_message(exc)
    assert exc.value.errors()[0]["type"] == "unknown_key"


def test_unknown_key_without_a_close_match_lists_the_valid_keys() -> None:
    with pytest.raises(ValidationError) as exc:
        ExecutionConfig.model_validate({"zzz": 1})
    assert only_message(exc) == "unknown key 'zzz'; valid keys are: max_retries, timeout"


def test_unknown_key_deep_inside_reports_its_location() -> None:
    with pytest.raises(ValidationError) as exc:
        GlobalConfig.model_validate({"observability": {"mlflow": {"experiment_nme": "x"}}})
    assert exc.value.errors()[0]["loc"] == ("observability", "mlflow")
    assert "did you mean experiment_name?" in only_message(exc)


# ------------------------------------------------------------------ types and ranges


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"retention_days": 0}, "retention_days", "greater than or equal to 1"),
        ({"retention_days": -30}, "retention_days", "greater than or equal to 1"),
        ({"retention_days": "ninety"}, "retention_days", "valid integer"),
        ({"retention_days": 1.5}, "retention_days", "valid integer"),
        ({"enabled": "maybe"}, "enabled", "valid boolean"),
        ({"flush_timeout_s": 0}, "flush_timeout_s", "greater than 0"),
        ({"flush_timeout_s": 7200}, "flush_timeout_s", "less than or equal to 3600"),
        ({"queue_size": 0}, "queue_size", "greater than or equal to 1"),
        ({"max_param_chars": 99}, "max_param_chars", "greater than or equal to 100"),
        ({"max_param_chars": 6001}, "max_param_chars", "less than or equal to 6000"),
        ({"max_artifact_bytes": 10}, "max_artifact_bytes", "greater than or equal to 1024"),
        ({"tags": ["a"]}, "tags", "valid dictionary"),
        ({"tracking_uri": 42}, "tracking_uri", "valid string"),
    ],
)
def test_mlflow_types_and_ranges(data: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as exc:
        MLFlowConfig.model_validate(data)
    assert exc.value.errors()[0]["loc"] == (field,)
    assert fragment in only_message(exc)


def test_retention_days_lower_bound_is_one() -> None:
    assert MLFlowConfig(retention_days=1).retention_days == 1
    assert MLFlowConfig(retention_days=90).retention_days == 90


@pytest.mark.parametrize(
    ("model", "data", "fragment"),
    [
        (LLMConfig, {"temperature": 2.5}, "less than or equal to 2"),
        (LLMConfig, {"temperature": -0.1}, "greater than or equal to 0"),
        (LLMConfig, {"max_tokens": 0}, "greater than or equal to 1"),
        (LLMConfig, {"provider": "gogle"}, "Input should be 'google', 'openai', 'anthropic' or"),
        (ExecutionConfig, {"timeout": 0}, "greater than 0"),
        (ExecutionConfig, {"max_retries": -1}, "greater than or equal to 0"),
        (ExecutionConfig, {"max_retries": 21}, "less than or equal to 20"),
    ],
)
def test_llm_and_execution_ranges(model: type, data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    assert fragment in only_message(exc)


def test_assignment_is_validated_too() -> None:
    config = MLFlowConfig()
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        config.retention_days = 0
    assert config.retention_days is None


# ------------------------------------------------------------------ experiment and run names


@pytest.mark.parametrize("name", ["", "   ", "\t"])
def test_empty_experiment_name_is_rejected_with_a_fix(name: str) -> None:
    with pytest.raises(ValidationError) as exc:
        MLFlowConfig(experiment_name=name)
    assert only_message(exc) == (
        "experiment_name is empty; give a name such as 'configurable_agents'"
    )


def test_experiment_name_is_stripped_and_may_be_a_tenant_template() -> None:
    assert MLFlowConfig(experiment_name="  prod  ").experiment_name == "prod"
    assert MLFlowConfig(experiment_name="{tenant_id}_workflows").experiment_name == (
        "{tenant_id}_workflows"
    )


@pytest.mark.parametrize(
    "template",
    ["{workflow_name}", "{workflow_name}_{timestamp}", "run_{date}", "{user_id}-{tenant_id}", "x"],
)
def test_run_name_templates_accepted(template: str) -> None:
    assert MLFlowConfig(run_name=template).run_name == template


@pytest.mark.parametrize("bad_field", ["{}", "{workflow name}", "{state.topic}", "{0}"])
def test_run_name_template_fields_must_be_plain_names(bad_field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        MLFlowConfig(run_name=f"run_{bad_field}")
    assert only_message(exc) == (
        f"run_name template field '{bad_field}' is not a plain name; "
        "use e.g. '{workflow_name}_{timestamp}'"
    )


# ------------------------------------------------------------------ tracking URIs


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:///mlflow.db",
        "sqlite:////abs/path/mlflow.db",
        "postgresql://user:pass@host/db",
        "postgresql+psycopg2://user:pass@host:5432/db",
        "mysql+pymysql://u:p@h/db",
        "http://localhost:5000",
        "https://user:token@mlflow.example.com",
        "file://./mlruns",
        "file:///tmp/mlruns",
        "./mlruns",
        "databricks",
        "databricks://workspace",
    ],
)
def test_supported_tracking_uris(uri: str) -> None:
    assert MLFlowConfig(tracking_uri=uri).tracking_uri == uri


def test_adr_file_uri_is_kept_as_written() -> None:
    # tracking.prepare_tracking_uri resolves it; the config keeps the user's text.
    assert MLFlowConfig(tracking_uri=" file://./mlruns ").tracking_uri == "file://./mlruns"
    assert {"sqlite", "postgresql", "http", "https", "file"} <= SUPPORTED_TRACKING_SCHEMES


def test_unsupported_scheme_names_the_scheme_and_the_choices() -> None:
    with pytest.raises(ValidationError) as exc:
        MLFlowConfig(tracking_uri="ftp://example.com/runs")
    assert only_message(exc) == (
        "unsupported tracking_uri scheme 'ftp' in 'ftp://example.com/runs'; use one of "
        "sqlite:///path.db, postgresql://user:pass@host/db, http(s)://host:port, file:///dir"
    )


def test_s3_from_the_adr_comment_explains_artifact_stores() -> None:
    with pytest.raises(ValidationError) as exc:
        MLFlowConfig(tracking_uri="s3://bucket/mlruns")
    message = only_message(exc)
    assert "unsupported tracking_uri scheme 's3'" in message
    assert "s3:// is an artifact store, not a tracking backend" in message
    assert "--artifacts-destination s3://" in message


def test_empty_tracking_uri() -> None:
    with pytest.raises(ValidationError) as exc:
        MLFlowConfig(tracking_uri="  ")
    assert only_message(exc) == "tracking_uri is empty; use e.g. 'sqlite:///mlflow.db'"


@pytest.mark.parametrize(
    ("uri", "suggestion"),
    [
        ("localhost:5000", "'http://localhost:5000'"),
        ("mlflow.internal:443/prefix", "'http://mlflow.internal:443/prefix'"),
        (f"user:{SECRET}@host:5000", "'http://user:***@host:5000'"),
    ],
)
def test_host_port_without_scheme_is_not_a_directory(uri: str, suggestion: str) -> None:
    with pytest.raises(ValidationError) as exc:
        MLFlowConfig(tracking_uri=uri)
    message = only_message(exc)
    assert "has no scheme, so MLflow would treat it as a local directory" in message
    assert message.endswith(f"did you mean {suggestion}?")
    assert SECRET not in str(exc.value)


# ------------------------------------------------------------------ credential masking


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (f"postgresql://user:{SECRET}@host/db", "postgresql://user:***@host/db"),
        (f"https://user:{SECRET}@host", "https://user:***@host"),
        (f"https://{SECRET}@host:443/x", "https://***@host:443/x"),
        # '/', '#' and '@' inside a password must not let its tail through.
        (f"postgresql://u:{SECRET}/x#y@z@host:5432/db", "postgresql://u:***@host:5432/db"),
        (
            f"postgresql://host/db?user=u&password={SECRET}&sslmode=require",
            "postgresql://host/db?user=u&password=***&sslmode=require",
        ),
        (f"https://host/api?token={SECRET}", "https://host/api?token=***"),
        (f"user:{SECRET}@host:5432", "user:***@host:5432"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("file://./mlruns", "file://./mlruns"),
        ("http://localhost:5000", "http://localhost:5000"),
    ],
)
def test_redact_uri(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown
    assert SECRET not in redact_uri(uri)


def test_display_tracking_uri_masks_but_keeps_the_real_value() -> None:
    config = MLFlowConfig(tracking_uri=f"postgresql://user:{SECRET}@host/db")
    assert config.display_tracking_uri == "postgresql://user:***@host/db"
    assert config.tracking_uri == f"postgresql://user:{SECRET}@host/db"  # still usable


def test_redacted_dump_masks_every_tracking_uri() -> None:
    config = GlobalConfig.model_validate(
        {
            "llm": {"provider": "demo"},
            "observability": {
                "mlflow": {"tracking_uri": f"https://user:{SECRET}@host", "tags": {"team": "a"}}
            },
        }
    )
    dump = redacted_dump(config)
    assert dump["observability"]["mlflow"]["tracking_uri"] == "https://user:***@host"
    assert dump["observability"]["mlflow"]["tags"] == {"team": "a"}
    assert dump["llm"]["provider"] == "demo"
    assert SECRET not in repr(dump)
    assert redacted_dump(MLFlowConfig())["tracking_uri"] == "sqlite:///mlflow.db"


def test_raw_validation_error_never_echoes_the_password() -> None:
    with pytest.raises(ValidationError) as exc:
        MLFlowConfig(tracking_uri=f"foo://user:{SECRET}@host/db")
    assert "'foo://user:***@host/db'" in str(exc.value)
    assert SECRET not in str(exc.value)
    assert SECRET not in repr(exc.value)
