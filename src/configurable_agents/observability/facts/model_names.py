"""Model and provider names as users and providers spell them -> lookup keys.

One model has many spellings (``models/gemini-2.5-flash-001``,
``us.anthropic.claude-sonnet-4-20250514-v1:0``, ``gpt-4o-2024-08-06``); prices are
looked up under the most specific spelling first, then ever shorter ones.
"""

from __future__ import annotations

import re

__all__ = ["candidate_names", "genai_provider_id", "provider_key"]

_BEDROCK_REGION = re.compile(r"^(?:us|eu|apac|ap|jp|au|ca|us-gov|global)\.")
_BEDROCK_VENDOR = re.compile(
    r"^(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|writer|google)\."
)
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")
_SUFFIXES = (
    re.compile(r"@\d{8}$"),  # Vertex AI Anthropic: claude-sonnet-4@20250514
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # gpt-4o-2024-08-06
    re.compile(r"-20\d{6}$"),  # claude-sonnet-4-20250514
    re.compile(r"-\d{3}$"),  # gemini-2.5-flash-001
    re.compile(r"-latest$"),
    re.compile(r"-(?:preview|exp)(?:-[\w.]+)*$"),  # gemini-3-pro-preview, ...-preview-05-20
)


def candidate_names(model: str) -> list[str]:
    """Lookup names for ``model``, most specific first, all lowercase.

    >>> candidate_names("us.anthropic.claude-sonnet-4-20250514-v1:0")[-1]
    'claude-sonnet-4'
    """
    name = model.strip().lower()
    out = [name]
    name = name.rsplit("/", 1)[-1]  # models/, vertex_ai/, openai/, publishers/.../models/
    name = name.removeprefix("ft:").split(":", 1)[0] if name.startswith("ft:") else name
    out.append(name)
    name = _BEDROCK_VERSION.sub("", _BEDROCK_VENDOR.sub("", _BEDROCK_REGION.sub("", name)))
    out.append(name)
    changed = True
    while changed:
        changed = False
        for pattern in _SUFFIXES:
            stripped = pattern.sub("", name)
            if stripped != name and stripped:
                name, changed = stripped, True
                out.append(name)
    return list(dict.fromkeys(n for n in out if n))


# Our/LangChain provider names -> genai-prices provider ids.
_GENAI_PROVIDER_IDS = {
    "openai": "openai",
    "azure": "azure",
    "azure_openai": "azure",
    "anthropic": "anthropic",
    "google": "google",
    "google_genai": "google",
    "google-genai": "google",
    "google_vertexai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "gemini": "google",
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "amazon_bedrock": "aws",
    "aws": "aws",
    "groq": "groq",
    "mistral": "mistral",
    "mistralai": "mistral",
    "deepseek": "deepseek",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "cohere": "cohere",
    "fireworks": "fireworks",
    "together": "together",
    "openrouter": "openrouter",
    "perplexity": "perplexity",
}


def provider_key(provider: str | None) -> str | None:
    """The provider name as a lookup key: stripped, lowercase (None stays None)."""
    return provider.strip().lower() if provider else None


def genai_provider_id(provider: str | None) -> str | None:
    """The genai-prices provider id for one of our/LangChain's provider keys, if known."""
    return _GENAI_PROVIDER_IDS.get(provider or "")
