"""The config-driven workflow runner: YAML workflow -> LangGraph app, handler attached."""

from configurable_agents.runtime.demo_model import DemoChatModel
from configurable_agents.runtime.executor import (
    NodeOutputError,
    RunSummary,
    WorkflowInputError,
    WorkflowResult,
    WorkflowTimeoutError,
    build_graph,
    prepare_inputs,
    run_workflow_from_config,
)
from configurable_agents.runtime.providers import ProviderError, create_chat_model
from configurable_agents.tools import available_tools, register_tool

__all__ = [
    "DemoChatModel",
    "NodeOutputError",
    "ProviderError",
    "RunSummary",
    "WorkflowInputError",
    "WorkflowResult",
    "WorkflowTimeoutError",
    "available_tools",
    "build_graph",
    "create_chat_model",
    "prepare_inputs",
    "register_tool",
    "run_workflow_from_config",
]
