"""The online-evaluation sink: score a sample of live finished workflows, off the caller's thread.

It is a sink like the others: the pipeline hands it each finished workflow's facts through
its own bounded queue (``queue_size``; past it a workflow is dropped and counted) and its own
worker thread, so a slow judge holds back neither the app nor another sink, and its failures
never reach the app. For a sampled, finished workflow it runs the configured scorers on the
redacted inputs and answer, then publishes each score:

- as an MLflow assessment on the workflow's trace (source CODE or LLM_JUDGE, source id
  ``online_eval``) and a ``quality/<scorer>`` metric on its parent run, through the same
  writer as ``configurable-agents feedback``; with the LLM judge, what the judge spent on
  it too (``judge_input_tokens``, ``judge_output_tokens``, ``judge_cost_usd``: see
  judge_usage.py), apart from the workflow's own cost. The MLflow sink writes the run and trace on
  its own worker, maybe later (retries, spool): scores wait in a bounded list and are
  written on idle ticks once the trace exists, or given up after ``write_wait_s``;
- as ``configurable_agents_quality_score`` (labels workflow, workflow_version, scorer) in the
  process's Prometheus families, when the Prometheus sink is on.

A scorer that fails (judge unreachable) or cannot score (a judge reply without a structured
verdict) records nothing for that workflow: a missing score must not look like a quality drop.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from configurable_agents.config.online_eval_config import OnlineEvalConfig
from configurable_agents.config.schema import MLFlowConfig
from configurable_agents.feedback import FeedbackError, resolve
from configurable_agents.feedback.writer import Score as Recordable
from configurable_agents.feedback.writer import write_score
from configurable_agents.names import EvalRole, EvalTag, Quality, Status
from configurable_agents.observability.sinks.base import Sink
from configurable_agents.online_eval.judge_usage import JudgeUsageSink
from configurable_agents.online_eval.scorers import build_scorers, source_of
from configurable_agents.online_eval.subject import subject_of
from configurable_agents.scoring import Example, Score, Scorer

if TYPE_CHECKING:
    from configurable_agents.observability.facts.model import WorkflowFacts
    from configurable_agents.observability.handler import MLflowCallbackHandler

_CA_TAGS = "ca_tags"  # invocation metadata whose dict becomes parent-run tags


def sampled(langchain_run_id: str, rate: float) -> bool:
    """Deterministic by run id: a replayed workflow is sampled (or not) the same way."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return UUID(langchain_run_id).int % 1_000_000 < rate * 1_000_000


@dataclass(slots=True)
class _Pending:
    trace_id: str
    scores: dict[str, tuple[Score, str]]  # scorer -> (score, source kind)
    deadline: float
    langchain_run_id: str = ""
    judged: bool = False  # the LLM judge was called: its spend goes on the run too


class OnlineEvalSink(Sink):
    """Scores sampled finished workflows; see the module docstring for where scores go."""

    name: ClassVar[str] = "online_eval"

    def __init__(self, config: OnlineEvalConfig, mlflow: MLFlowConfig, *,
                 prometheus_cap: int = 50, scorers: list[Scorer] | None = None) -> None:
        super().__init__()
        self.config = config
        self.queue_size = config.queue_size
        self.mlflow = mlflow if mlflow.enabled else None
        self.prometheus_cap = prometheus_cap
        self.scorers = scorers if scorers is not None else build_scorers(config)
        self._pending: deque[_Pending] = deque()
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._clients: tuple[Any, Any] | None = None
        self._judge_handler: MLflowCallbackHandler | None = None
        self._judge_usage = JudgeUsageSink(config.max_pending_writes)
        self.scored = 0  # workflows scored
        self.written = 0  # workflows whose scores reached MLflow
        self.expired = 0  # workflows whose trace never appeared within write_wait_s

    # ---- scoring (worker thread) ----------------------------------------------------------

    def export(self, facts: WorkflowFacts) -> None:
        if facts.sampled_out or facts.status != Status.FINISHED:
            return
        if not sampled(facts.langchain_run_id, self.config.sample_rate):
            return
        subject = subject_of(facts, self.config.output_key)
        example = Example(id=facts.langchain_run_id, inputs=subject.inputs, expected="")
        run_config = self._judge_config(facts)
        judged = bool(run_config["callbacks"])  # spent even when it gave no verdict
        results: dict[str, tuple[Score, str]] = {}
        for scorer in self.scorers:
            try:
                score = scorer.score(example, subject.output, run_config)
            except Exception as exc:  # counted and logged once; no score is not a zero
                self.diagnostics.internal_error(f"online_eval.{scorer.name}", exc)
                continue
            if getattr(score, "unscorable", False):  # a judge reply with no verdict
                self.diagnostics.warn_once(f"online_eval.{scorer.name}.unscorable",
                                           "online_eval: %s gave no verdict (not recorded): %s",
                                           scorer.name, score.rationale[:200])
                continue
            results[scorer.name] = (score, source_of(scorer))
        if not results:
            self.counters.add("failed")
            return
        self.scored += 1
        self._observe_prometheus(facts, results)
        if self.mlflow is not None:
            self._queue_write(_Pending(f"tr-{UUID(facts.langchain_run_id).hex}", results,
                                       time.monotonic() + self.config.write_wait_s,
                                       facts.langchain_run_id, judged))
            self._write_ready()
        self.counters.add("exported")

    def _judge_config(self, facts: WorkflowFacts) -> dict[str, Any]:
        handler = self._judge() if any(source_of(s) == "llm_judge" for s in self.scorers) else None
        return {
            "callbacks": [handler] if handler is not None else [],
            "run_name": f"{facts.name}{Quality.JUDGE_WORKFLOW_SUFFIX}",
            "metadata": {_CA_TAGS: {EvalTag.EVAL_ROLE: EvalRole.JUDGE,
                                     Quality.JUDGED_RUN_TAG: facts.langchain_run_id}},
        }

    def _judge(self) -> MLflowCallbackHandler | None:
        """The judge's own handler (MLflow only): its runs are the judge's cost, apart."""
        if self.mlflow is None:
            return None
        if self._judge_handler is None:
            from configurable_agents.observability.handler import MLflowCallbackHandler

            self._judge_handler = MLflowCallbackHandler(
                self.mlflow, workflow_name=f"online{Quality.JUDGE_WORKFLOW_SUFFIX}",
                sinks=[self._judge_usage])
        return self._judge_handler

    def _observe_prometheus(self, facts: WorkflowFacts,
                            results: dict[str, tuple[Score, str]]) -> None:
        from configurable_agents.observability.sinks.prometheus.sink import current_metrics

        metrics = current_metrics()
        if metrics is None:
            return
        # The workflow label the Prometheus sink uses: the configured name, else the graph's.
        workflow, version = facts.name, facts.version
        if facts.configured_name:
            workflow, version = facts.configured_name, facts.configured_version
        for name, (score, _) in results.items():
            metrics.observe_quality(workflow, version, name, score.value, self.prometheus_cap)

    # ---- writing to MLflow (worker thread: export, tick, flush) ---------------------------

    def _queue_write(self, pending: _Pending) -> None:
        with self._lock:
            if len(self._pending) >= self.config.max_pending_writes:
                self._pending.popleft()
                self.counters.add("dropped")
            self._pending.append(pending)

    def _client_pair(self) -> tuple[Any, Any]:
        if self._clients is None:
            from mlflow import MlflowClient
            from mlflow.tracing.client import TracingClient

            assert self.mlflow is not None
            uri = self.mlflow.tracking_uri
            self._clients = (MlflowClient(tracking_uri=uri), TracingClient(uri))
        return self._clients

    def _write_ready(self) -> bool:
        """Write every pending score whose trace exists; True when nothing is left.

        One writer at a time (the worker's tick and a flush): a flush must not see an empty
        list while the worker is still writing the batch it took.
        """
        with self._writing:
            return self._write_batch()

    def _write_batch(self) -> bool:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
        keep: list[_Pending] = []
        for index, pending in enumerate(batch):
            try:
                self._write(pending)
                self.written += 1
            except FeedbackError:  # the trace is not written yet
                if time.monotonic() < pending.deadline:
                    keep.append(pending)
                else:
                    self.expired += 1
                    self.counters.add("failed")
            except Exception as exc:  # the store failed: try the rest on a later tick
                self.diagnostics.internal_error("online_eval.write", exc)
                keep.extend(batch[index:])
                break
        with self._lock:
            self._pending.extendleft(reversed(keep))
            return not self._pending

    def _write(self, pending: _Pending) -> None:
        client, tracing = self._client_pair()
        target = resolve(client, tracing, pending.trace_id)
        # The MLflow sink stores the trace's info, then its spans (which update the trace
        # row again): write a score only once both are stored, never racing that write.
        trace = _stored_trace(tracing, pending.trace_id)
        if trace is None or not trace.data.spans:
            raise FeedbackError(f"trace {pending.trace_id} has no spans yet")
        spend = self._judge_usage.peek(pending.langchain_run_id) if pending.judged else None
        if pending.judged and spend is None and time.monotonic() < pending.deadline:
            # The judge's run reaches its handler's sinks just after the call returns;
            # past the deadline the scores are written without it.
            raise FeedbackError(f"judge spend for {pending.langchain_run_id} not known yet")
        if spend is not None and target.run_id is not None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            client.log_batch(target.run_id, metrics=[
                Metric(key, value, now, 0) for key, value in spend.metrics().items()])
        for name, (score, source) in pending.scores.items():
            write_score(client, tracing, target, Recordable(
                name=name, value=float(score.value), source=source,
                source_id=Quality.ONLINE_SOURCE_ID, rationale=score.rationale or None,
                metadata={Quality.META_ORIGIN: Quality.ORIGIN_ONLINE}),
                metric_prefix=Quality.ONLINE_PREFIX)
        if pending.judged:
            self._judge_usage.take(pending.langchain_run_id)

    def tick(self) -> None:
        if self._pending:
            self._write_ready()

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        judge = self._judge_handler
        if judge is not None:
            judge.flush(timeout=max(0.0, timeout / 2))
        while not self._write_ready():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self, timeout: float) -> bool:
        done = self.flush(timeout)
        judge, self._judge_handler = self._judge_handler, None
        if judge is not None:
            judge.close(timeout=max(0.5, timeout / 2))
        return done


_NOT_YET = frozenset({"NOT_FOUND", "RESOURCE_DOES_NOT_EXIST"})


def _stored_trace(tracing: Any, trace_id: str) -> Any:
    """The trace with its spans, or None while they are still in the sink's span batch.

    Before its spans land MLflow knows the trace info only and ``get_trace`` looks for the
    span data in the trace's artifacts, raising "missing span data" (or NOT_FOUND): that
    is "not yet", not a store failure.
    """
    from mlflow.exceptions import MlflowException

    try:
        return tracing.get_trace(trace_id)
    except MlflowException as exc:
        if exc.error_code in _NOT_YET or "missing span data" in str(exc):
            return None
        raise
