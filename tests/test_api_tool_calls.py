"""Reading tool calls out of replies (modules/tool_calls.py), by each template convention,
whole and streamed; anything malformed stays text."""
from __future__ import annotations

import pytest

from modules.tool_calls import (HERMES, LLAMA3, MISTRAL, ToolCallStream, messages_for_template, parse_tool_calls,
                                template_style)

NAMES = {"get_weather", "search"}


@pytest.mark.parametrize("reply, content, calls", [
    ('Let me look. <tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
     "Let me look.", [("get_weather", {"city": "Paris"})]),
    ('<tool_call>{"name": "search", "arguments": {"q": "a"}}</tool_call>\n'
     '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>',
     "", [("search", {"q": "a"}), ("get_weather", {"city": "Rome"})]),
    ('{"name": "get_weather", "parameters": {"city": "Oslo"}}', "", [("get_weather", {"city": "Oslo"})]),
    ('<|python_tag|>{"name": "search", "parameters": {"q": "x"}}; {"name": "get_weather", "parameters": {}}',
     "", [("search", {"q": "x"}), ("get_weather", {})]),
    ('[TOOL_CALLS][{"name": "search", "arguments": {"q": "y"}}]', "", [("search", {"q": "y"})]),
    ('[TOOL_CALLS]get_weather[ARGS]{"city": "Lima"}', "", [("get_weather", {"city": "Lima"})]),
    ('{"name": "get_weather", "arguments": "{\\"city\\": \\"Kyiv\\"}"}', "", [("get_weather", {"city": "Kyiv"})]),
])
def test_each_convention(reply, content, calls):
    text, found = parse_tool_calls(reply, NAMES)
    assert text == content
    assert [(c.name, c.arguments) for c in found] == calls
    assert all(c.id.startswith("call_") for c in found) and len({c.id for c in found}) == len(found)


@pytest.mark.parametrize("reply", [
    "Just an answer.",
    '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>',     # cut off
    '{"name": "unknown_tool", "parameters": {}}',                                # not one of the tools
    '{"answer": 42}',                                                            # a JSON answer
    "[TOOL_CALLS]not json",
])
def test_what_is_not_a_call_stays_text(reply):
    assert parse_tool_calls(reply, NAMES) == (reply, [])


def test_streaming_shows_text_and_holds_back_the_call():
    stream = ToolCallStream(NAMES)
    shown = [stream.feed(piece) for piece in
             ["Checking ", "now <tool", "_call>{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": \"Bern\"}}",
              "</tool_call>"]]
    assert "".join(shown) == "Checking now "
    rest, calls = stream.finish()
    assert rest == "" and calls[0].name == "get_weather" and calls[0].arguments == {"city": "Bern"}


def test_streaming_gives_back_text_that_only_looked_like_a_call():
    stream = ToolCallStream(NAMES)
    assert stream.feed("  ") == ""
    assert stream.feed('{"answer"') == ""
    assert stream.finish() == ('  {"answer"', [])
    plain = ToolCallStream(NAMES)
    assert plain.feed("a <b") + plain.feed("old> text") == "a <bold> text"
    assert plain.finish() == ("", [])


def test_template_style_and_messages_for_templates():
    assert template_style("{% if tools %}<tool_call>{% endif %}") == HERMES
    assert template_style("<|python_tag|>{{ tools }}") == LLAMA3
    assert template_style("[TOOL_CALLS]") == MISTRAL
    assert template_style(None) == HERMES
    messages = messages_for_template([{"role": "assistant", "content": "", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}])
    assert messages[0]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
