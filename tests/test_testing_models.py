"""configurable_agents.testing: a reply's model name never silently changes the price."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from configurable_agents.testing import UsageReportingChatModel, reply


class FakeModel(UsageReportingChatModel, GenericFakeChatModel):
    pass


def test_reply_without_model_reports_the_priced_model_name() -> None:
    model = FakeModel(model_name="gpt-4o", messages=iter([reply("hi")]))
    message = model.invoke("q")
    assert message.response_metadata["model_name"] == "gpt-4o"
    assert message.usage_metadata is not None and message.usage_metadata["input_tokens"] == 100


def test_reply_may_echo_a_dated_name_of_the_same_model() -> None:
    model = FakeModel(model_name="gpt-4o", messages=iter([reply("hi", model="gpt-4o-2024-08-06")]))
    assert model.invoke("q").response_metadata["model_name"] == "gpt-4o-2024-08-06"


@pytest.mark.parametrize("stream", [False, True])
def test_reply_naming_another_model_is_refused(stream: bool) -> None:
    """It would be priced as model_name (ls_model_name wins), so it is refused, not ignored."""
    model = FakeModel(model_name="gemini-2.5-flash",
                      messages=iter([reply("hi", model="claude-sonnet-4-5")]))
    with pytest.raises(ValueError, match="priced by model_name"):
        list(model.stream("q")) if stream else model.invoke("q")
