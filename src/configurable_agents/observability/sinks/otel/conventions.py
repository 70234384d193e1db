"""The span and attribute names the OpenTelemetry sink writes, in one place.

``gen_ai.*`` and ``error.type`` follow the OpenTelemetry GenAI semantic conventions
(semantic-conventions-genai; the ``opentelemetry-semantic-conventions`` package marks its
copies deprecated since they moved there, so they are spelled here). Where the conventions
define nothing (cost, retries, interrupts, the ADR-011 totals) the attribute is namespaced
``configurable_agents.*`` with the ADR name after the prefix, so a question gets the same
number from an MLflow metric and from a span attribute.
"""

from __future__ import annotations

from typing import Final

# ---- GenAI semantic conventions ---------------------------------------------------------------

OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_ID: Final = "gen_ai.response.id"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"  # includes cached input tokens
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"  # includes reasoning tokens
USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
USER_ID: Final = "user.id"  # general semantic conventions (the end user)
WORKFLOW_NAME: Final = "gen_ai.workflow.name"
AGENT_NAME: Final = "gen_ai.agent.name"
AGENT_ID: Final = "gen_ai.agent.id"
AGENT_VERSION: Final = "gen_ai.agent.version"
TOOL_NAME: Final = "gen_ai.tool.name"
TOOL_TYPE: Final = "gen_ai.tool.type"
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"


class Operation:
    """Values of ``gen_ai.operation.name`` (and the first word of the span name)."""

    INVOKE_WORKFLOW: Final = "invoke_workflow"
    INVOKE_AGENT: Final = "invoke_agent"
    CHAT: Final = "chat"
    TEXT_COMPLETION: Final = "text_completion"
    EXECUTE_TOOL: Final = "execute_tool"
    RETRIEVAL: Final = "retrieval"


# ---- ours, where the conventions are silent -----------------------------------------------------

PREFIX: Final = "configurable_agents."
COST_USD: Final = "configurable_agents.cost_usd"  # one model call, USD
PRICED: Final = "configurable_agents.priced"  # False: model unknown to the price book
COST_SOURCE: Final = "configurable_agents.cost_source"
TOKENS_ESTIMATED: Final = "configurable_agents.tokens_estimated"
RETRY_ATTEMPT: Final = "configurable_agents.retry_attempt"  # Runnable.with_retry attempt number
LLM_CACHE_HIT: Final = "configurable_agents.llm_cache_hit"
STEP: Final = "configurable_agents.langgraph_step"
INTERRUPT_EVENT: Final = "configurable_agents.interrupt"
# Caller attributes (ca_tags...) left off a span to keep ours within the span limit.
CALLER_ATTRIBUTES_DROPPED: Final = "configurable_agents.caller_attributes_dropped"
RETRY_EVENT: Final = "configurable_agents.retry"

# ls_provider (LangChain) -> gen_ai.provider.name (well-known values of the conventions).
PROVIDERS: Final = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "google": "gcp.gen_ai",
    "google_genai": "gcp.gen_ai",
    "google_vertexai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "cohere": "cohere",
    "mistralai": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
}


def provider_name(ls_provider: str | None) -> str | None:
    """The conventions' provider name for LangChain's ``ls_provider`` (unknown ones as given)."""
    if not ls_provider:
        return None
    return PROVIDERS.get(ls_provider.lower(), ls_provider.lower())


def ours(name: str) -> str:
    """``configurable_agents.<ADR name>`` for an ADR-011 metric or tag (prefix not doubled)."""
    return name if name.startswith(PREFIX) else PREFIX + name
