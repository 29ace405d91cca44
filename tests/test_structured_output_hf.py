"""Structured output on the Transformers and GPTQ backends (llguidance token masks), on the
real fp16 and GPTQ test models through the scheduler, and through the API with the official
openai client against a real server running the Transformers model."""
from __future__ import annotations

import json
import re

import jsonschema
import openai
import pytest

from loaders.json_schema_grammar import grammar_for_schema
from modules.api.structured import response_format_grammar, tool_call_grammar
from modules.events import TextDelta
from modules.params import GenerationParams
from modules.tool_calls import HERMES
from tests.conftest import loaded_test_model, scheduler_over
from tests.test_transformers_backend import FRANCE, chat, greedy

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 30},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pets": {"type": "array", "items": {"enum": ["cat", "dog", "fish"]}, "maxItems": 3},
    },
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}
DESCRIBE = "Describe a person and their pets as JSON."
WEATHER = {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"],
    "additionalProperties": False}}
# GBNF with a character class, a bounded repetition and alternatives.
AGE_GBNF = 'root ::= name " is " [1-9] [0-9]? " years old."\nname ::= [A-Z] [a-z]{1,12}'
AGE_TEXT = re.compile(r"[A-Z][a-z]{1,12} is [1-9][0-9]? years old\.")
YES_NO = 'root ::= ("Yes" | "No") "."'


@pytest.fixture(scope="module", params=["fp16", "gptq"])
def backend(request):
    yield from loaded_test_model(request.param, parallel=4)


@pytest.fixture(scope="module")
def scheduler(backend):
    yield from scheduler_over(backend, "The test module is over.")


def sampled(seed: int, max_new_tokens: int) -> GenerationParams:
    return GenerationParams(temperature=0.8, seed=seed, max_new_tokens=max_new_tokens)


def test_json_schema_output_parses_and_validates(scheduler, backend):
    grammar, schema = response_format_grammar({"type": "json_schema", "json_schema": {"schema": PERSON}},
                                               backend.info.loader)
    for params in (greedy(150), sampled(1, 150)):
        result = scheduler.submit(chat(backend, DESCRIBE), params.replace(grammar_string=grammar)).result()
        assert result.reason == "stop", result
        jsonschema.validate(json.loads(result.text), schema)


def test_json_object_gives_an_object(scheduler, backend):
    grammar, _ = response_format_grammar({"type": "json_object"}, backend.info.loader)
    result = scheduler.submit(chat(backend, "A JSON object about cats, with a few fields."),
                              greedy(80, grammar_string=grammar)).result()
    if result.reason == "stop":           # an open-ended object may run to the token limit
        assert isinstance(json.loads(result.text), dict)
    else:
        assert result.text.startswith("{")


def test_gbnf_grammar_string_is_obeyed(scheduler, backend):
    prompt = chat(backend, "Tell me about someone and their age.")
    for params in (greedy(30), sampled(3, 30)):
        result = scheduler.submit(prompt, params.replace(grammar_string=AGE_GBNF)).result()
        assert result.reason == "stop", result
        assert AGE_TEXT.fullmatch(result.text), result.text


def test_a_required_tool_call_reads_back_and_validates(scheduler, backend):
    """The grammar the API and the Chat tab use when a call is compulsory."""
    grammar = tool_call_grammar(HERMES, [WEATHER], loader=backend.info.loader)
    result = scheduler.submit(chat(backend, "What is the weather in Paris?"),
                              greedy(80, grammar_string=grammar)).result()
    assert result.reason == "stop", result
    body = re.fullmatch(r"<tool_call>\n(.*)\n</tool_call>", result.text, re.S)
    assert body, result.text
    call = json.loads(body.group(1))
    assert call["name"] == "get_weather"
    jsonschema.validate(call["arguments"], WEATHER["parameters"])


def test_gbnf_made_from_a_schema_is_obeyed(scheduler, backend):
    """A JSON grammar in llama.cpp's format, as a user may paste it (llama-cpp-python's
    converter): llguidance converts it and the reply validates. No free strings, to keep it short."""
    schema = {"type": "object", "additionalProperties": False, "required": ["age", "pets", "likes_cats"],
              "properties": {"age": PERSON["properties"]["age"], "pets": PERSON["properties"]["pets"],
                             "likes_cats": {"type": "boolean"}}}
    result = scheduler.submit(chat(backend, DESCRIBE),
                              greedy(60, grammar_string=grammar_for_schema(schema))).result()
    assert result.reason == "stop", result
    jsonschema.validate(json.loads(result.text), schema)


def test_the_probabilities_view_shows_only_what_the_grammar_allows(backend):
    seq = backend.open_sequence(backend.tokenize(chat(backend, FRANCE), add_bos=True),
                                GenerationParams(grammar_string=YES_NO))
    try:
        ready = backend.forward({})
        assert seq in ready
        texts = {backend.token_text(t) for t, _ in backend.top_candidates(seq, 20)}
        assert texts and all("Yes".startswith(t) or "No".startswith(t) for t in texts), texts
    finally:
        backend.close_sequence(seq)


def test_logprobs_are_read_under_the_grammar_at_each_token(scheduler, backend):
    request = scheduler.submit(chat(backend, FRANCE), sampled(5, 10).replace(grammar_string=YES_NO), logprobs=5)
    assert request.result().text in ("Yes.", "No.")
    _, first_alternatives = request.token_logprobs[0]
    texts = [piece.decode() for _, piece, _ in first_alternatives]
    assert texts and all("Yes".startswith(t) or "No".startswith(t) for t in texts), texts
    for (_, piece, logprob), _ in request.token_logprobs:
        assert logprob > -50, (piece, logprob)          # drawn from what the grammar allowed


def test_sequences_of_one_batch_follow_their_own_grammars(scheduler, backend):
    requests = {
        "yes/no": (chat(backend, FRANCE), greedy(10, grammar_string=YES_NO)),
        "age": (chat(backend, "Tell me about someone and their age."), greedy(30, grammar_string=AGE_GBNF)),
        "free": (chat(backend, FRANCE), greedy(16)),
    }
    alone = {name: scheduler.submit(*args).result().text for name, args in requests.items()}
    together = {name: scheduler.submit(*args) for name, args in requests.items()}
    texts = {name: request.result().text for name, request in together.items()}
    assert texts["yes/no"] in ("Yes.", "No.")
    assert AGE_TEXT.fullmatch(texts["age"]), texts["age"]
    assert texts == alone


def test_a_bad_grammar_fails_alone_while_another_reply_decodes(scheduler, backend):
    long_params = greedy(40, ban_eos_token=True)
    expected = scheduler.submit(chat(backend, FRANCE), long_params).result().text
    running = scheduler.submit(chat(backend, FRANCE), long_params)
    events = running.events()
    first = next(e for e in events if isinstance(e, TextDelta))      # it is decoding now
    bad = scheduler.submit(chat(backend, FRANCE), greedy(10, grammar_string='root ::= ("Yes"'))
    undefined = scheduler.submit(chat(backend, FRANCE), greedy(10, grammar_string='root ::= "a" missing'))
    good = scheduler.submit(chat(backend, FRANCE), greedy(10, grammar_string=YES_NO))
    for failed in (bad, undefined):
        result = failed.result()
        assert result.reason == "error" and "grammar" in result.error, result
    assert good.result().text in ("Yes.", "No.")
    rest = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert running.result().reason == "length" and first.text + rest == expected


# ---- the API, with the official openai client ---------------------------------------------------
@pytest.fixture(scope="module")
def api_server(tmp_path_factory):
    from tests.api_server import serve_with_keys
    from tools.make_test_models import ensure_test_models
    folder = ensure_test_models()["fp16"]
    yield from serve_with_keys(tmp_path_factory.mktemp("api-hf"), ["--model", str(folder), "--loader", "Transformers"])


@pytest.fixture(scope="module")
def api(api_server):
    from tests.api_server import KEY
    client = openai.OpenAI(base_url=api_server.url + "v1", api_key=KEY, max_retries=0, timeout=300)
    return client, client.models.list().data[0].id


def test_api_structured_output_on_transformers(api):
    from tests.api_server import HERMES_TEMPLATE
    client, model = api
    assert model == "SmolLM2-135M-Instruct-fp16"
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": DESCRIBE}], max_tokens=150, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}})
    jsonschema.validate(json.loads(reply.choices[0].message.content), PERSON)

    tool = {"type": "function", "function": {"description": "The weather in a city", **WEATHER}}
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is the weather in Paris?"}], tools=[tool],
        tool_choice="required", max_tokens=80, temperature=0, extra_body={"chat_template": HERMES_TEMPLATE})
    assert reply.choices[0].finish_reason == "tool_calls"
    call = reply.choices[0].message.tool_calls[0].function
    assert call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])

    reply = client.completions.create(model=model, prompt="Is Paris in France? Answer:", max_tokens=10,
                                      temperature=0, extra_body={"grammar_string": 'root ::= " Yes." | " No."'})
    assert reply.choices[0].text in (" Yes.", " No.")

    with pytest.raises(openai.BadRequestError, match="grammar"):
        client.completions.create(model=model, prompt="Hello", max_tokens=5,
                                  extra_body={"grammar_string": 'root ::= ("Yes"'})
