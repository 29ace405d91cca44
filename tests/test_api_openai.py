"""The OpenAI-compatible endpoints, driven by the official `openai` package against the real
server on loopback: chat and completions, streamed and not, stop, max_tokens, seed, tools,
response_format, logprobs, and a client that goes away."""
from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest

from tests.api_server import HERMES_TEMPLATE, KEY, MODEL, metric, serve_with_keys, wait_for

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
QUESTION = [{"role": "user", "content": "What color is the sky?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve_with_keys(tmp_path_factory.mktemp("api-openai"))


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "v1", api_key=KEY, max_retries=0, timeout=120)


def test_models_lists_the_loaded_model(client):
    models = client.models.list()
    assert MODEL in [m.id for m in models.data]


def test_chat_completion_renders_the_models_template_and_answers(client):
    reply = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=20, temperature=0)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and "blue" in choice.message.content
    assert reply.usage.prompt_tokens > 10            # the template's markers, not just the question
    assert reply.usage.completion_tokens <= 20


def test_streamed_chat_gives_the_same_text_as_the_whole_reply(client):
    whole = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=24, temperature=0)
    stream = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=24, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completion_streamed_and_not(client):
    whole = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=12, temperature=0)
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=12, temperature=0, stream=True))
    assert whole.choices[0].text and streamed == whole.choices[0].text


def test_max_tokens_and_sampler_fields_by_their_own_names(client):
    """ban_eos_token is a GenerationParams field: the reply must run to max_tokens."""
    reply = client.completions.create(model=MODEL, prompt="Hello", max_tokens=7, temperature=0,
                                      extra_body={"ban_eos_token": True})
    assert reply.usage.completion_tokens == 7 and reply.choices[0].finish_reason == "length"


def test_stop_ends_the_reply_before_the_stop_string(client):
    prompt, run_on = "The sea is", {"ban_eos_token": True}
    free = client.completions.create(model=MODEL, prompt=prompt, max_tokens=30, temperature=0,
                                     extra_body=run_on).choices[0].text
    words = free.split()
    assert len(words) > 4, free
    stop = " " + words[3]
    stopped = client.completions.create(model=MODEL, prompt=prompt, max_tokens=30, temperature=0, stop=[stop],
                                        extra_body=run_on)
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].text == free[:free.index(stop)]


def test_the_same_seed_gives_the_same_text(client):
    def sample(seed):
        return client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=20, temperature=1.0,
                                          seed=seed).choices[0].text
    assert sample(1234) == sample(1234)
    assert len({sample(1), sample(2), sample(3)}) > 1


def test_preset_by_name(client):
    """The Deterministic preset is greedy: two replies agree even at the preset's own settings."""
    def run():
        return client.completions.create(model=MODEL, prompt="Tell me a joke", max_tokens=10,
                                         extra_body={"preset": "Deterministic"}).choices[0].text
    assert run() == run()


def test_response_format_json_schema_gives_valid_json(client):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Describe a person."}], max_tokens=60, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
    value = json.loads(reply.choices[0].message.content)
    jsonschema.validate(value, schema)


def test_response_format_json_object(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "A JSON object about cats."}], max_tokens=60,
        temperature=0, response_format={"type": "json_object"}, extra_body={"ban_eos_token": False})
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_logprobs_from_the_sampler_chain(client):
    reply = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=8, temperature=1.0, seed=7,
                                           logprobs=True, top_logprobs=3)
    entries = reply.choices[0].logprobs.content
    assert len(entries) == reply.usage.completion_tokens
    assert "".join(e.token for e in entries) == reply.choices[0].message.content
    for entry in entries:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        values = [t.logprob for t in entry.top_logprobs]
        assert values == sorted(values, reverse=True) and entry.logprob <= values[0] + 1e-9
        assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token


def test_logprobs_streamed_and_in_completions(client):
    chunks = list(client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=6, temperature=1.0,
                                                 seed=3, logprobs=True, top_logprobs=2, stream=True))
    streamed = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert len(streamed) == 6 and all(len(e.top_logprobs) == 2 for e in streamed)
    legacy = client.completions.create(model=MODEL, prompt="Hello", max_tokens=5, temperature=1.0, seed=3, logprobs=2)
    lp = legacy.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 5
    assert "".join(lp.tokens) == legacy.choices[0].text


@pytest.mark.parametrize("choice", [{"type": "function", "function": {"name": "get_weather"}}, "required"])
def test_tool_choice_makes_a_call_with_valid_arguments(client, choice):
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the weather in Paris?"}], tools=[WEATHER],
        tool_choice=choice, max_tokens=60, temperature=0, extra_body={"chat_template": HERMES_TEMPLATE})
    message = reply.choices[0]
    assert message.finish_reason == "tool_calls"
    call = message.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.id
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])


def test_tool_calls_stream_as_deltas(client):
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Rome?"}], tools=[WEATHER],
        tool_choice="required", max_tokens=60, temperature=0, stream=True,
        extra_body={"chat_template": HERMES_TEMPLATE}))
    calls = [d for c in chunks if c.choices and c.choices[0].delta.tool_calls for d in c.choices[0].delta.tool_calls]
    assert calls and calls[0].function.name == "get_weather" and calls[0].index == 0
    assert json.loads("".join(d.function.arguments or "" for d in calls))["city"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()


def test_tool_none_and_tool_results_go_through_the_template(client):
    """tool_choice none: plain text. A tool result (role 'tool') reaches the prompt: a longer
    result makes a longer prompt."""
    plain = client.chat.completions.create(model=MODEL, messages=QUESTION, tools=[WEATHER], tool_choice="none",
                                           max_tokens=10, temperature=0)
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].message.content

    def prompt_tokens(result: str) -> int:
        messages = [{"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": None, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": result}]
        return client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], max_tokens=1,
                                              temperature=0, extra_body={"chat_template": HERMES_TEMPLATE}
                                              ).usage.prompt_tokens
    assert prompt_tokens("Sunny and warm, 25 degrees, light wind from the west") > prompt_tokens("Sunny") + 5


def test_tokenize_detokenize_and_count(server):
    headers = {"Authorization": f"Bearer {KEY}"}
    base = server.url + "v1/internal/"
    tokens = httpx.post(base + "encode", json={"text": "Hello world"}, headers=headers).json()
    assert tokens["length"] == len(tokens["tokens"]) > 0
    assert httpx.post(base + "decode", json={"tokens": tokens["tokens"]}, headers=headers).json()["text"] \
        == "Hello world"
    assert httpx.post(base + "token-count", json={"text": "Hello world"}, headers=headers).json()["length"] \
        == tokens["length"]


def test_a_client_that_goes_away_cancels_its_generation(server, client):
    """Streamed and not: the generation stops soon after the connection closes, long
    before its max_tokens, and the person's slot is free again."""
    cancelled = metric(server.url, "generations_total", reason="cancelled")
    generated = metric(server.url, "generated_tokens_total")
    stream = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=3000, stream=True,
                                            extra_body={"ban_eos_token": True})
    for _ in range(5):
        next(stream)
    stream.close()
    wait_for(lambda: metric(server.url, "generations_total", reason="cancelled") > cancelled, 30,
             "the streamed generation to be cancelled")
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=1.5).completions.create(model=MODEL, prompt="Hello", max_tokens=3000,
                                                            extra_body={"ban_eos_token": True})
    wait_for(lambda: metric(server.url, "generations_total", reason="cancelled") > cancelled + 1, 30,
             "the non-streamed generation to be cancelled")
    assert metric(server.url, "generated_tokens_total") - generated < 1500
    reply = client.completions.create(model=MODEL, prompt="Hi", max_tokens=2, temperature=0)
    assert reply.choices[0].text is not None


def test_the_page_still_serves_gradio_clients(server):
    """The /v1 routes sit beside Gradio's own: gradio_client still reads the page's API."""
    from gradio_client import Client
    info = Client(server.url, verbose=False).view_api(return_format="dict", print_info=False)
    assert info["named_endpoints"] or info["unnamed_endpoints"]
