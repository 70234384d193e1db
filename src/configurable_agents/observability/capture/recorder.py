"""CallbackRecorder: LangChain callback events -> in-memory run records (the hot path).

The callbacks run on the caller's thread (or event loop: ``run_inline`` keeps
LangChain from hopping to a thread pool), so each one only does O(1) dict and
list updates keyed by ``run_id`` and captures references and timestamps. When a
root run starts or ends, the recorder calls a hook (``_workflow_started``,
``_workflow_finished``) that the public handler connects to the pipeline; this
package imports neither MLflow nor any sink. State is keyed by run id, never by
context variables, so one handler serves many threads and concurrent ``ainvoke``s.
One mixin per event family, as in langchain-core's ``callbacks/base.py``.
"""

from __future__ import annotations

from configurable_agents.observability.capture.chain_events import ChainEvents
from configurable_agents.observability.capture.model_events import ModelEvents
from configurable_agents.observability.capture.tool_events import ToolEvents
from configurable_agents.observability.capture.tree import NODE_METRICS_EVENT

__all__ = ["NODE_METRICS_EVENT", "CallbackRecorder"]


class CallbackRecorder(ChainEvents, ModelEvents, ToolEvents):
    """Builds one :class:`WorkflowRecord` tree per root invocation from LangChain events.

    Subclasses connect the hooks: ``_workflow_started`` (caller thread, must be O(1)),
    ``_workflow_finished`` (caller thread, hands the finished record off) and
    ``_internal_error`` (counts and logs a failure of ours; never raises).
    """
