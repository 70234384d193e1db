"""Names and limits of the MLflow trace we write (run tags, experiment kind, MLflow caps)."""

from __future__ import annotations

from configurable_agents.names import Tag

# Run tags we add: run -> trace link, and why a run has no trace of ours.
TRACE_ID_TAG = Tag.TRACE_ID
SPOOLED_EXPERIMENT = "0"  # placeholder location of a spooled trace until it is replayed
TRACE_SKIPPED_TAG = Tag.TRACE_SKIPPED
SKIPPED_FOR_AUTOLOG = "mlflow.langchain.autolog"

# The experiment tag MLflow's UI reads to pick its GenAI layout (Overview, Traces,
# Sessions, plus a "Training runs" tab when the experiment has runs).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
GENAI_EXPERIMENT_KIND = "genai_development"
EXPERIMENT_TAGS = {EXPERIMENT_KIND_TAG: GENAI_EXPERIMENT_KIND}

# MLflow's limits: previews 1000 chars (OSS), metadata values 250, trace tag values 4096.
PREVIEW_CHARS = 1000
METADATA_CHARS = 250
TAG_VALUE_CHARS = 4096
STACKTRACE_CHARS = 20_000
TRACE_SCHEMA_VERSION_KEY = "mlflow.trace_schema.version"
