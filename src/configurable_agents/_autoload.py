"""Imported at interpreter start by ``configurable_agents_autoload.pth``.

Costs one environment lookup unless ``CONFIGURABLE_AGENTS_MLFLOW`` is set; then it
imports the observability package, which registers the LangChain configure hook.
"""

import os

if os.environ.get("CONFIGURABLE_AGENTS_MLFLOW", "").strip().lower() in {"1", "true", "yes", "on"}:
    try:
        import configurable_agents.observability  # noqa: F401
    except Exception as exc:
        import sys

        print(f"configurable-agents: autolog disabled: {exc}", file=sys.stderr)
