"""An offline, deterministic chat model, so the product can be seen working without keys.

It answers from the prompt, reports ``usage_metadata`` the way real providers do
(about one token per four characters) under the *configured* model name, so the
handler prices it like the real model would be priced. It honours "N words" and
"N bullet points" in a prompt (an edited, shorter prompt costs less, as it
would for real), emits JSON when the prompt carries a JSON Schema, and calls
every bound tool once before answering (enough for a ReAct loop), and answers a
``Question:`` prompt deterministically (:mod:`.demo_qa`, for the evaluation demo).

Runs made with it are tagged ``demo_model=true`` by the runner: its costs are
what the configured model *would* have cost, not real spend.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from configurable_agents.runtime import demo_qa

JSON_SCHEMA_MARKER = "JSON Schema:"
DEFAULT_WORDS = 120

_WORDS = re.compile(r"(\d{1,4})(?:\s*(?:-|\u2013|to)\s*(\d{1,4}))?\s+words", re.IGNORECASE)
_BULLETS = re.compile(r"(\d{1,2}|three|four|five)?[\s-]*bullet", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_EXPRESSION = re.compile(r"[-(]*\d[\d\s.+\-*/()%]*[\d)]")
_ABOUT = re.compile(r".*\b(?:about|on|regarding)\s+(.+)$", re.IGNORECASE)
_TRAILING = re.compile(r"\s+(?:from|using|with|in \d)\s+|,", re.IGNORECASE)
_OPERATOR = re.compile(r"\d\s*[-+*/%]\s*[\d(]")
_NUMBER_WORDS = {"three": 3, "four": 4, "five": 5}
_SENTENCES = (
    "{s} matters because it changes how teams plan, build and measure their work.",
    "The most useful starting point for {s} is a small, well-defined problem.",
    "Practitioners describe {s} as simple to try and harder to run well at scale.",
    "Costs around {s} fall when results are measured and compared run by run.",
    "A common mistake with {s} is to optimise before the baseline is known.",
    "Recent work on {s} favours clear interfaces over clever shortcuts.",
    "For most readers, {s} is best understood through one concrete example.",
    "The evidence on {s} is encouraging, though it varies by context.",
    "Teams adopting {s} report that observability pays for itself quickly.",
    "In short, {s} rewards patience, measurement and steady iteration.",
)


def infer_ls_provider(model_name: str) -> str:
    """The LangChain provider id a real client would report for ``model_name``."""
    name = model_name.lower().rsplit("/", 1)[-1]
    if name.startswith("gemini"):
        return "google_genai"
    if name.startswith(("gpt", "o1", "o3", "o4", "chatgpt")):
        return "openai"
    if name.startswith("claude"):
        return "anthropic"
    return "demo"


def count_tokens(text: str) -> int:
    """Deterministic token estimate: about four characters per token."""
    return max(1, math.ceil(len(text) / 4))


def _text(message: BaseMessage) -> str:
    return message.text if isinstance(message.text, str) else str(message.content)


def _subject(prompt: str) -> str:
    """A short phrase naming what the prompt is about."""
    for line in prompt.splitlines():
        line = line.strip().rstrip(".:")
        if not line or line.startswith(("{", "-", "#")):
            continue
        if ":" in line and line.rsplit(":", 1)[1].strip():
            line = line.rsplit(":", 1)[1].strip()
        elif found := _ABOUT.search(line):
            line = found.group(1)
        line = _TRAILING.split(line, maxsplit=1)[0]
        return " ".join(line.split()[:8]) or "the topic"
    return "the topic"


def _target_words(prompt: str) -> int:
    match = _WORDS.search(prompt)
    if not match:
        return DEFAULT_WORDS
    low = int(match.group(1))
    high = int(match.group(2) or low)
    return max(5, (low + high) // 2)


def _bullet_count(prompt: str) -> int | None:
    match = _BULLETS.search(prompt)
    if not match:
        return None
    word = (match.group(1) or "3").lower()
    return int(_NUMBER_WORDS.get(word, word))


def compose(prompt: str, seed: str, max_tokens: int | None = None) -> str:
    """Deterministic prose about the prompt's subject, of the length it asks for."""
    subject = _subject(prompt)
    digest = hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()
    words_wanted = _target_words(prompt)
    if max_tokens is not None:
        words_wanted = min(words_wanted, max(1, max_tokens * 3 // 4))
    bullets = _bullet_count(prompt)
    sentences: list[str] = []
    words = 0
    i = 0
    while words < words_wanted:
        sentence = _SENTENCES[(digest[0] + i) % len(_SENTENCES)].format(s=subject)
        sentences.append(sentence)
        words += len(sentence.split())
        i += 1
    if bullets:
        return "\n".join(f"- {s}" for s in sentences[: max(bullets, 1)])
    text = " ".join(sentences)
    return " ".join(text.split()[:words_wanted]).rstrip(",") + ("" if text.endswith(".") else ".")


def _first_result(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    return (lines or [""])[0][:160].rstrip(".")


def _schema_in(prompt: str) -> dict[str, Any] | None:
    at = prompt.rfind(JSON_SCHEMA_MARKER)
    if at < 0:
        return None
    start = prompt.find("{", at)
    if start < 0:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(prompt[start:])
    except json.JSONDecodeError:
        return None
    return schema if isinstance(schema, dict) else None


def _value_for(spec: dict[str, Any], name: str, prompt: str, seed: str, first_text: str) -> Any:
    kind = spec.get("type")
    if kind == "string":
        return compose(f"{prompt}\n{name}", seed)
    if kind == "integer":
        return len(first_text.split()) if first_text else 3
    if kind == "number":
        return round(len(prompt) % 97 / 10, 1)
    if kind == "boolean":
        return True
    if kind == "array":
        item = spec.get("items", {})
        return [_value_for(item, f"{name} {i}", prompt, seed, first_text) for i in range(3)]
    if kind == "object":
        return {}
    return compose(prompt, seed)  # anyOf / untyped: prose is the safest guess


def structured_reply(schema: dict[str, Any], prompt: str, seed: str) -> str:
    """A JSON object that validates against ``schema``, filled from the prompt."""
    props: dict[str, Any] = schema.get("properties", {})
    values: dict[str, Any] = {}
    first_text = ""
    # Strings first, so a count field can count the words of the text beside it.
    ordered = sorted(props, key=lambda n: props[n].get("type") != "string")
    for name in ordered:
        values[name] = _value_for(props[name], name, prompt, seed, first_text)
        if isinstance(values[name], str) and not first_text:
            first_text = values[name]
    return json.dumps({name: values[name] for name in props})


def _tool_args(parameters: dict[str, Any], user_text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name, spec in parameters.get("properties", {}).items():
        kind = spec.get("type")
        if kind in ("number", "integer"):
            found = _NUMBER.search(user_text)
            number = float(found.group()) if found else 1.0
            args[name] = int(number) if kind == "integer" else number
        elif kind == "boolean":
            args[name] = True
        elif "expr" in name:
            found = [e.strip() for e in _EXPRESSION.findall(user_text) if _OPERATOR.search(e)]
            args[name] = found[0] if found else "1 + 1"
        else:
            args[name] = _subject(user_text)
    return args


class DemoChatModel(BaseChatModel):
    """Offline stand-in for a real chat model; priced as ``model_name``."""

    model_config = ConfigDict(populate_by_name=True)

    model_name: str = Field(default="gemini-2.5-flash", alias="model")
    temperature: float = 0.7
    max_tokens: int | None = None
    provider: str | None = Field(
        default=None, description="ls_provider to report; inferred from the model name."
    )

    @property
    def _llm_type(self) -> str:
        return "configurable-agents-demo"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature}

    @property
    def ls_provider(self) -> str:
        return self.provider or infer_ls_provider(self.model_name)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=self.ls_provider,
            ls_model_name=self.model_name,
            ls_model_type="chat",
            ls_temperature=self.temperature,
        )
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop:
            params["ls_stop"] = stop
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools in OpenAI format, as the real clients do."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools: list[dict[str, Any]] = kwargs.get("tools") or []
        message = self._reply(messages, tools)
        prompt_chars = sum(len(_text(m)) for m in messages) + len(
            json.dumps(tools) if tools else ""
        )
        output_text = _text(message) + (
            json.dumps(message.tool_calls) if message.tool_calls else ""
        )
        input_tokens = max(1, math.ceil(prompt_chars / 4))
        output_tokens = count_tokens(output_text)
        message.usage_metadata = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }
        message.response_metadata = {"model_name": self.model_name, "finish_reason": "stop"}
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _reply(self, messages: list[BaseMessage], tools: list[dict[str, Any]]) -> AIMessage:
        last_human = max(
            (i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1
        )
        prompt = "\n".join(_text(m) for m in messages if not isinstance(m, ToolMessage))
        user_text = _text(messages[last_human]) if last_human >= 0 else prompt
        tool_results = [m for m in messages[last_human + 1 :] if isinstance(m, ToolMessage)]
        seed = f"{self.model_name}"
        if tools and not tool_results:
            digest = hashlib.sha256(user_text.encode()).hexdigest()[:12]
            calls = [
                {
                    "name": t["function"]["name"],
                    "args": _tool_args(t["function"].get("parameters", {}), user_text),
                    "id": f"call_{digest}_{i}",
                    "type": "tool_call",
                }
                for i, t in enumerate(tools)
            ]
            return AIMessage(content="", tool_calls=calls)
        qa_reply = demo_qa.answer(prompt)
        if qa_reply is not None:
            return AIMessage(content=qa_reply)
        schema = _schema_in(prompt)
        if schema is not None:
            return AIMessage(content=structured_reply(schema, prompt, seed))
        text = compose(user_text, seed, self.max_tokens)
        if tool_results:
            found = "; ".join(
                f"{m.name or 'tool'} returned {_first_result(_text(m))}" for m in tool_results
            )
            text = f"{found}. {text}"
        return AIMessage(content=text)
