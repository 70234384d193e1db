"""The one place that spells the names users rely on: ADR-011's params, metrics, tags, artifacts.

Dashboards, saved searches and `report` filters are written against these strings,
so the write side (facts, sinks) and the read side (reports, retention) both take
them from here; nothing else spells them. The module sits at the package root so
that the read side can import it without importing the callback handler.
"""

from __future__ import annotations

from typing import Final


class Param:
    """Run params (parent: workflow; nested: node)."""

    WORKFLOW_NAME: Final = "workflow_name"
    WORKFLOW_VERSION: Final = "workflow_version"
    GLOBAL_MODEL: Final = "global_model"
    GLOBAL_TEMPERATURE: Final = "global_temperature"
    NODE_ID: Final = "node_id"
    NODE_MODEL: Final = "node_model"
    TOOLS: Final = "tools"


class Metric:
    """Run metrics. Parent first (ADR names), then nested-run names."""

    DURATION_SECONDS: Final = "duration_seconds"
    TOTAL_INPUT_TOKENS: Final = "total_input_tokens"
    TOTAL_OUTPUT_TOKENS: Final = "total_output_tokens"
    TOTAL_COST_USD: Final = "total_cost_usd"
    NODE_COUNT: Final = "node_count"
    RETRY_COUNT: Final = "retry_count"
    STATUS: Final = "status"  # 1 success, 0 failure
    LLM_CALLS: Final = "llm_calls"
    TOTAL_CACHED_INPUT_TOKENS: Final = "total_cached_input_tokens"
    TOTAL_CACHE_WRITE_TOKENS: Final = "total_cache_write_tokens"
    TOTAL_REASONING_TOKENS: Final = "total_reasoning_tokens"
    TOTAL_TOKENS: Final = "total_tokens"
    FALLBACK_COUNT: Final = "fallback_count"  # attempts `with_fallbacks` moved past

    NODE_DURATION_MS: Final = "node_duration_ms"
    INPUT_TOKENS: Final = "input_tokens"
    OUTPUT_TOKENS: Final = "output_tokens"
    RETRIES: Final = "retries"
    COST_USD: Final = "cost_usd"
    CACHED_INPUT_TOKENS: Final = "cached_input_tokens"
    REASONING_TOKENS: Final = "reasoning_tokens"
    TIME_TO_FIRST_TOKEN_MS: Final = "time_to_first_token_ms"

    # DSPy evaluations and optimizations (observability/dspy_*.py).
    SCORE: Final = "score"  # an Evaluate's aggregate score, as DSPy reports it (0-100)
    BASELINE_SCORE: Final = "baseline_score"
    OPTIMIZED_SCORE: Final = "optimized_score"
    SCORE_DELTA: Final = "score_delta"
    EXAMPLES: Final = "examples"
    # Rollup runs (sampled-out workflows folded per time bucket): counts and sums.
    ROLLUP_WORKFLOWS: Final = "rollup_workflows"
    ROLLUP_DURATION_SECONDS_SUM: Final = "rollup_duration_seconds_sum"
    ROLLUP_STATUS_PREFIX: Final = "rollup_status/"  # + a Status value: workflows with it
    ROLLUP_NODE_PREFIX: Final = "node/"  # + node id + "/" + a RollupMeasure
    ROLLUP_MODEL_PREFIX: Final = "model/"  # + model name + "/" + a RollupMeasure


class Tag:
    """Run tags we set (attribution tags come from invocation metadata keys)."""

    KIND: Final = "configurable_agents.kind"  # "workflow" | "node" | "rollup"
    ROLLUP_ID: Final = "configurable_agents.rollup_id"  # one per written rollup (dedup key)
    ROLLUP_BUCKET_S: Final = "configurable_agents.rollup_bucket_s"
    LANGCHAIN_RUN_ID: Final = "langchain_run_id"
    STATUS: Final = "status"  # RUNNING | FINISHED | FAILED | INTERRUPTED
    INTERRUPTED: Final = "interrupted"
    WORKFLOW_NAME: Final = "workflow_name"
    WORKFLOW_VERSION: Final = "workflow_version"
    NODE_ID: Final = "node_id"
    ERROR_TYPE: Final = "error_type"
    ERROR_MESSAGE: Final = "error_message"
    ROOT_KIND: Final = "configurable_agents.root_kind"
    HOST: Final = "configurable_agents.host"
    PID: Final = "configurable_agents.pid"
    HEARTBEAT_MS: Final = "configurable_agents.heartbeat_ms"
    TRACE_ID: Final = "configurable_agents.trace_id"
    TRACE_SKIPPED: Final = "configurable_agents.trace_skipped"
    CLOSED_BY: Final = "configurable_agents.closed_by"
    CLOSED_REASON: Final = "configurable_agents.closed_reason"
    PRICING: Final = "pricing"
    UNPRICED_MODELS: Final = "unpriced_models"
    TOKENS_ESTIMATED: Final = "tokens_estimated"
    TOKENS_ESTIMATION_METHOD: Final = "tokens_estimation_method"
    USAGE_HINT: Final = "usage_hint"
    LLM_CACHE_HIT: Final = "llm_cache_hit"
    # The model(s) that answered after a `with_fallbacks` moved past a failed candidate.
    FALLBACK_MODEL: Final = "fallback_model"
    TRUNCATED_PREFIX: Final = "truncated."
    # MLflow's own tag linking a nested run to its parent.
    MLFLOW_PARENT_RUN_ID: Final = "mlflow.parentRunId"
    MLFLOW_RUN_NAME: Final = "mlflow.runName"
    STOP_REASON: Final = "stop_reason"  # with status KILLED: a StopReason value
    # Where a node sent control with Command(graph=Command.PARENT, goto=...).
    HANDOFF_TO: Final = "handoff_to"
    # With status INTERRUPTED: why (an InterruptKind value) and at which node(s).
    INTERRUPT_KIND: Final = "interrupt_kind"
    INTERRUPTED_AT: Final = "interrupted_at"
    # Attribution tags the read side groups by (keys of ATTRIBUTION_KEYS).
    USER_ID: Final = "user_id"
    TEAM: Final = "team"
    TENANT_ID: Final = "tenant_id"
    THREAD_ID: Final = "thread_id"  # LangGraph's conversation thread
    SESSION_ID: Final = "session_id"


class Kind:
    """Values of :attr:`Tag.KIND`."""

    WORKFLOW: Final = "workflow"
    NODE: Final = "node"
    EVALUATION: Final = "evaluation"  # an evaluation run (its examples are workflow runs)
    ROLLUP: Final = "rollup"  # sampled-out workflows of one bucket, summed


class EvalTag:
    """Tags linking runs to an evaluation and a workflow version (evaluation package).

    Not in :class:`Tag` on purpose: the evaluation runner sets them on example runs
    through invocation ``ca_tags``, which may never set a :class:`Tag` value.
    """

    EVAL_RUN_ID: Final = "eval_run_id"  # on an example run: its evaluation run
    EVAL_EXAMPLE_ID: Final = "eval_example_id"
    EVAL_ROLE: Final = "eval_role"  # an EvalRole value
    EVAL_DATASET: Final = "eval_dataset"  # on the evaluation run
    EVAL_DATASET_DIGEST: Final = "eval_dataset_digest"
    EVAL_PRIMARY_SCORER: Final = "eval_primary_scorer"
    # A LoggedModel id: the MLflow sink copies it to the trace's ``mlflow.modelId``, so the
    # trace is listed under that Agent version.
    LOGGED_MODEL_ID: Final = "logged_model_id"


class DspyTag:
    """Tags of a DSPy optimization (``track_optimization``): which side a run is, its links.

    Not in :class:`Tag`: the optimization run sets them through ``ca_tags``.
    """

    ROLE: Final = "dspy.role"  # "optimization" | "baseline" | "optimized"
    # On the optimization run: the MLflow run ids of its two evaluation runs.
    BASELINE_EVAL_RUN: Final = "dspy.baseline_eval_run_id"
    OPTIMIZED_EVAL_RUN: Final = "dspy.optimized_eval_run_id"
    # On each evaluation run: the optimization run's ``langchain_run_id``.
    OPTIMIZATION_RUN: Final = "dspy.optimization_langchain_run_id"


class EvalRole:
    """Values of :attr:`EvalTag.EVAL_ROLE`: what a run does within an evaluation."""

    EXAMPLE: Final = "example"
    JUDGE: Final = "judge"


class EvalMetric:
    """Metrics of an evaluation run (each scorer's mean is ``<scorer>/mean``, MLflow's name)."""

    ACCURACY: Final = "accuracy"
    EXAMPLES: Final = "example_count"
    CORRECT: Final = "correct_count"
    ERRORS: Final = "error_count"
    LATENCY_MEAN_S: Final = "latency_mean_s"
    LATENCY_P95_S: Final = "latency_p95_s"
    TOTAL_COST_USD: Final = "total_cost_usd"
    COST_PER_EXAMPLE_USD: Final = "cost_per_example_usd"
    COST_PER_CORRECT_USD: Final = "cost_per_correct_usd"
    JUDGE_COST_USD: Final = "judge_cost_usd"
    # Examples some scorer could not score (a judge reply without a structured verdict).
    UNSCORABLE: Final = "unscorable_count"


class Quality:
    """Feedback and online-evaluation scores, as run metrics and tags (the quality loop).

    A score is an MLflow assessment on the workflow's trace; the parent run carries its mean
    over the valid assessments of that name (``feedback/<name>``, ``quality/<scorer>``) and
    their count (``.../count``), so the runs list, compare view and ``report`` read it.
    """

    FEEDBACK_PREFIX: Final = "feedback/"  # + name: mean of the feedback's numeric values
    ONLINE_PREFIX: Final = "quality/"  # + scorer: online evaluation's score
    COUNT_SUFFIX: Final = "/count"  # + on a score metric: how many assessments it averages
    LABEL_TAG_PREFIX: Final = "feedback.label/"  # + name: the latest label-valued feedback
    # The online judge's calls are runs of workflow ``<workflow>`` + this suffix.
    JUDGE_WORKFLOW_SUFFIX: Final = "_judge"
    ONLINE_SOURCE_ID: Final = "online_eval"  # the assessments' source id
    # On a scored workflow's parent run: what online evaluation's judge spent scoring it,
    # apart from the workflow's own total_* metrics (judge cost only when its model is priced).
    JUDGE_INPUT_TOKENS: Final = "judge_input_tokens"
    JUDGE_OUTPUT_TOKENS: Final = "judge_output_tokens"
    JUDGE_COST_USD: Final = "judge_cost_usd"
    # On the online judge's own runs: the LangChain run id of the workflow it scored.
    JUDGED_RUN_TAG: Final = "judged_langchain_run_id"
    # Assessment metadata: which langchain run the score is about.
    META_LANGCHAIN_RUN_ID: Final = "configurable_agents.langchain_run_id"
    META_ORIGIN: Final = "configurable_agents.origin"  # "feedback" | "online_eval"
    ORIGIN_FEEDBACK: Final = "feedback"
    ORIGIN_ONLINE: Final = "online_eval"


class RollupMeasure:
    """Per-node and per-model measure names inside a rollup run's metric keys."""

    RUNS: Final = "runs"  # node runs, or model calls
    INPUT_TOKENS: Final = "input_tokens"
    OUTPUT_TOKENS: Final = "output_tokens"
    COST_USD: Final = "cost_usd"
    RETRIES: Final = "retries"
    DURATION_MS_SUM: Final = "duration_ms_sum"


class Status:
    """Values of :attr:`Tag.STATUS` (MLflow run statuses, plus INTERRUPTED on FINISHED runs)."""

    RUNNING: Final = "RUNNING"
    FINISHED: Final = "FINISHED"
    FAILED: Final = "FAILED"
    KILLED: Final = "KILLED"
    INTERRUPTED: Final = "INTERRUPTED"


class StopReason:
    """Values of :attr:`Tag.STOP_REASON`: why a run is KILLED rather than FAILED."""

    CLOSED_EARLY: Final = "closed_early"  # the client left stream() before the end
    CANCELLED: Final = "cancelled"  # the awaiting task was cancelled


class InterruptKind:
    """Values of :attr:`Tag.INTERRUPT_KIND`: what paused the graph."""

    INTERRUPT: Final = "interrupt"  # interrupt() inside a node
    BEFORE: Final = "interrupt_before"  # static breakpoint before a node
    AFTER: Final = "interrupt_after"  # static breakpoint after a node


# Value of :attr:`Tag.PRICING` when some call had no known price.
PRICING_UNKNOWN: Final = "unknown"


class Artifact:
    """Artifact file names."""

    INPUTS: Final = "inputs.json"
    OUTPUTS: Final = "outputs.json"
    ERROR: Final = "error.txt"
    PROMPT: Final = "prompt.txt"
    RESPONSE: Final = "response.txt"
    PARAMS_DIR: Final = "params"
    OPTIMIZED_PROGRAM: Final = "optimized_program.json"  # DSPy's own save format
    PROGRAM_DIFF: Final = "program_diff.md"  # instructions and demos, baseline vs optimized
    # One row per example: a DSPy evaluation's (inputs, prediction, score), or an
    # evaluation run's (id, inputs, expected, output, score, correct, cost_usd, ...).
    EVAL_RESULTS: Final = "eval_results.json"


# Invocation metadata keys that become attribution tags on the parent and every node.
ATTRIBUTION_KEYS: Final = ("user_id", "team", "cost_center", "tenant_id", "session_id", "thread_id")

# Rollup run names: ``rollup_{workflow}_{bucket start, UTC}``; node model param prefix.
ROLLUP_RUN_PREFIX: Final = "rollup_"
ROLLUP_NODE_MODEL_PARAM: Final = "node_model/"  # + node id: the model, when only one

# Node run names: ``node_{node_id}`` (ADR-011).
NODE_RUN_PREFIX: Final = "node_"
