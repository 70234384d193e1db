"""Online evaluation: the ``eval`` scorers on a sample of live finished workflows.

Enabled by ``observability.online_eval`` (see docs/guide/quality.md); the handler's sink
registry loads :class:`OnlineEvalSink` from here when the block is enabled.
"""

from configurable_agents.online_eval.sink import OnlineEvalSink, sampled

__all__ = ["OnlineEvalSink", "sampled"]
