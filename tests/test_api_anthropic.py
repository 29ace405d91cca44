"""The Anthropic-compatible Messages API, driven by the official `anthropic` package against
the real server: messages streamed and not, stop sequences, max_tokens, tools, token counts."""
from __future__ import annotations

import json

import anthropic
import jsonschema
import pytest

from tests.api_server import HERMES_TEMPLATE, KEY, MODEL, serve_with_keys

WEATHER = {"name": "get_weather", "description": "The weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
QUESTION = [{"role": "user", "content": "What color is the sky?"}]
GREEDY = {"temperature": 0}     # older clients' field, still read; the current client has none
WITH_TOOLS = {**GREEDY, "chat_template": HERMES_TEMPLATE}   # SmolLM2's own template ignores tools


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve_with_keys(tmp_path_factory.mktemp("api-anthropic"))


@pytest.fixture(scope="module")
def client(server):
    return anthropic.Anthropic(base_url=server.url.rstrip("/"), api_key=KEY, max_retries=0, timeout=120)


def test_a_message_and_its_usage(client):
    message = client.messages.create(model=MODEL, max_tokens=20, messages=QUESTION, extra_body=GREEDY)
    assert message.role == "assistant" and message.content[0].type == "text"
    assert "blue" in message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 5 and 0 < message.usage.output_tokens <= 20


def test_streamed_message_gives_the_same_text(client):
    whole = client.messages.create(model=MODEL, max_tokens=20, messages=QUESTION, extra_body=GREEDY)
    with client.messages.stream(model=MODEL, max_tokens=20, messages=QUESTION, extra_body=GREEDY) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text
    assert final.stop_reason == whole.stop_reason and final.usage.output_tokens == whole.usage.output_tokens


def test_max_tokens_and_stop_sequences(client):
    long = client.messages.create(model=MODEL, max_tokens=6, messages=QUESTION,
                                  extra_body={**GREEDY, "ban_eos_token": True})
    assert long.stop_reason == "max_tokens" and long.usage.output_tokens == 6
    free = client.messages.create(model=MODEL, max_tokens=30, messages=QUESTION, extra_body=GREEDY).content[0].text
    stop = free.split()[2]
    stopped = client.messages.create(model=MODEL, max_tokens=30, messages=QUESTION,
                                     stop_sequences=[stop], extra_body=GREEDY)
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == stop
    assert stop not in stopped.content[0].text


def test_system_prompt_changes_the_prompt(client):
    plain = client.messages.count_tokens(model=MODEL, messages=QUESTION)
    with_system = client.messages.count_tokens(model=MODEL, messages=QUESTION,
                                               system="You answer in one word. " * 20)
    assert with_system.input_tokens > plain.input_tokens > 5


@pytest.mark.parametrize("choice", [{"type": "tool", "name": "get_weather"}, {"type": "any"}])
def test_tool_use(client, choice):
    message = client.messages.create(model=MODEL, max_tokens=60, tools=[WEATHER], tool_choice=choice, extra_body=WITH_TOOLS,
                                     messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    assert message.stop_reason == "tool_use"
    use = [block for block in message.content if block.type == "tool_use"][0]
    assert use.name == "get_weather" and use.id.startswith("toolu_")
    jsonschema.validate(use.input, WEATHER["input_schema"])


def test_tool_use_streamed_and_its_result_fed_back(client):
    with client.messages.stream(model=MODEL, max_tokens=60, tools=[WEATHER],
                                tool_choice={"type": "any"}, extra_body=WITH_TOOLS,
                                messages=[{"role": "user", "content": "Weather in Rome?"}]) as stream:
        final = stream.get_final_message()
    use = [block for block in final.content if block.type == "tool_use"][0]
    assert final.stop_reason == "tool_use" and use.input.get("city")
    answer = client.messages.create(model=MODEL, max_tokens=20, tools=[WEATHER], extra_body=WITH_TOOLS, messages=[
        {"role": "user", "content": "Weather in Rome?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 25 C"}]}])
    assert answer.content and answer.stop_reason in ("end_turn", "max_tokens", "tool_use")


def test_structured_output(client):
    schema = {"type": "object", "properties": {"animal": {"type": "string"}, "legs": {"type": "integer"}},
              "required": ["animal", "legs"], "additionalProperties": False}
    message = client.messages.create(model=MODEL, max_tokens=60, extra_body=GREEDY,
                                     output_config={"format": {"type": "json_schema", "schema": schema}},
                                     messages=[{"role": "user", "content": "Describe an animal."}])
    jsonschema.validate(json.loads(message.content[0].text), schema)


def test_errors_come_in_anthropics_shape(server, client):
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model=MODEL, max_tokens=-5, messages=QUESTION)
    assert refused.value.body["type"] == "error"
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-unknown", max_tokens=5, messages=QUESTION)
    wrong = anthropic.Anthropic(base_url=server.url.rstrip("/"), api_key="wrong-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as denied:
        wrong.messages.create(model=MODEL, max_tokens=5, messages=QUESTION)
    assert denied.value.body["error"]["type"] == "authentication_error"
