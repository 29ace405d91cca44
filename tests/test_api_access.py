"""What the API refuses, and to whom: bad input answered in the client's own error shape
with a 4xx (never a 500 or a traceback) while the server keeps serving; keys, the admin key
and per-key limits; the API on its own port; /health and /metrics."""
from __future__ import annotations

import concurrent.futures

import httpx
import openai
import pytest

from tests.api_server import ADMIN_KEY, KEY, MODEL, OTHER_KEY, metric, serve_with_keys, wait_for

CHAT = "v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve_with_keys(tmp_path_factory.mktemp("api-access"), ["--max-requests-per-user", "2"])


def post(server, path: str, body=None, *, key: str | None = KEY, raw: bytes | None = None, headers=None):
    headers = dict(headers or {})
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(server.url + path, json=body if raw is None else None, content=raw, headers=headers,
                      timeout=120)


def assert_openai_error(response, status: int, text: str = ""):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] and text.lower() in error["message"].lower()
    assert "Traceback" not in response.text


def assert_anthropic_error(response, status: int, kind: str):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == kind


@pytest.mark.parametrize("body, status, text", [
    ({"model": "gpt-4-turbo", "messages": HELLO}, 404, "does not exist"),
    ({"messages": HELLO, "max_tokens": -3}, 400, "at least 1"),
    ({"messages": HELLO, "max_tokens": 0}, 400, "at least 1"),
    ({"messages": HELLO, "max_tokens": 10**12}, 400, "more than this server allows"),
    ({"messages": "Hello"}, 400, "messages"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "role"),
    ({"messages": [{"content": "no role"}]}, 400, "role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, 400,
     "only text"),
    ({"messages": HELLO, "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 5}}}},
     400, "schema"),
    ({"messages": HELLO, "response_format": {"type": "xml"}}, 400, "response_format"),
    ({"messages": HELLO, "tool_choice": "required"}, 400, "needs tools"),
    ({"messages": HELLO, "temperature": "warm"}, 400, "temperature"),
    ({"messages": HELLO, "min_p": 3}, 400, "min_p"),
    ({"messages": HELLO, "preset": "No Such Preset"}, 400, "preset"),
    ({"messages": HELLO, "n": 3}, 400, "n"),
    ({"messages": [{"role": "user", "content": "word " * 4000}]}, 400, "context"),
])
def test_bad_chat_requests_get_a_4xx_in_openais_shape(server, body, status, text):
    assert_openai_error(post(server, CHAT, body), status, text)


def test_malformed_json_and_a_prompt_longer_than_the_context(server):
    assert_openai_error(post(server, CHAT, raw=b'{"messages": [}'), 400, "not valid JSON")
    assert_openai_error(post(server, CHAT, raw=b'[1, 2]'), 400, "JSON object")
    assert_openai_error(post(server, "v1/completions", {"prompt": "word " * 4000}), 400, "context holds")
    assert_openai_error(post(server, "v1/completions", {"prompt": "x", "grammar_string": "root ::= ("}), 400,
                        "grammar")
    assert_openai_error(post(server, "v1/completions", {"prompt": "x", "stream": True,
                                                        "grammar_string": "root ::= ("}), 400, "grammar")
    assert_openai_error(post(server, "v1/internal/decode", {"tokens": [10**9]}), 400, "outside the vocabulary")
    assert_openai_error(post(server, "v1/no/such/endpoint", {}), 404)


def test_anthropic_routes_answer_in_anthropics_shape(server):
    headers = {"anthropic-version": "2023-06-01"}
    assert_anthropic_error(post(server, "v1/messages", raw=b"{oops", headers=headers), 400, "invalid_request_error")
    assert_anthropic_error(post(server, "v1/messages", {"messages": HELLO}, headers=headers), 400,
                           "invalid_request_error")       # max_tokens is required
    assert_anthropic_error(post(server, "v1/messages", {"max_tokens": 5, "messages": [{"role": "system",
                                                                                       "content": "x"}]}),
                           400, "invalid_request_error")
    assert_anthropic_error(post(server, "v1/messages", {"max_tokens": 5, "messages": HELLO}, key=None,
                                headers={"x-api-key": "wrong"}), 401, "authentication_error")
    ok = post(server, "v1/messages", {"max_tokens": 3, "messages": HELLO}, key=None, headers={"x-api-key": KEY})
    assert ok.status_code == 200 and ok.json()["type"] == "message"
    models = httpx.get(server.url + "v1/models", headers={"x-api-key": KEY, **headers}).json()
    assert models["data"][0]["type"] == "model" and models["data"][0]["id"] == MODEL


def test_missing_or_wrong_key(server):
    assert_openai_error(post(server, CHAT, {"messages": HELLO}, key=None), 401, "needs an API key")
    assert_openai_error(post(server, CHAT, {"messages": HELLO}, key="not-the-key"), 401, "invalid api key")
    assert_openai_error(post(server, CHAT, {"messages": HELLO}, key=KEY + "x"), 401, "invalid api key")
    client = openai.OpenAI(base_url=server.url + "v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_the_server_keeps_serving_after_bad_input(server):
    for raw in (b"", b"\xff\xfe", b"null", b'{"messages": [{"role": "user", "content": null}]}' * 3):
        response = post(server, CHAT, raw=raw)
        assert 400 <= response.status_code < 500 and "Traceback" not in response.text
    reply = post(server, CHAT, {"messages": HELLO, "max_tokens": 3, "temperature": 0})
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] is not None
    assert "Traceback" not in server.log_tail(200_000)


def test_each_key_has_its_own_allowance(server):
    """--max-requests-per-user 2: a third request with the same key waits for nothing and is
    refused with 429; the other key is not affected; once the first ones end, the key works."""
    client = openai.OpenAI(base_url=server.url + "v1", api_key=KEY, max_retries=0, timeout=120)
    streams = [client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=3000, stream=True,
                                              extra_body={"ban_eos_token": True}) for _ in range(2)]
    for stream in streams:
        next(iter(stream))
    try:
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2)
        assert "limit is 2" in refused.value.message
        other = openai.OpenAI(base_url=server.url + "v1", api_key=OTHER_KEY, max_retries=0, timeout=120)
        assert other.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=2).choices
    finally:
        for stream in streams:
            stream.close()
    wait_for(lambda: post(server, CHAT, {"messages": HELLO, "max_tokens": 1}).status_code == 200, 30,
             "the key's slots to be free again")


def test_loading_and_unloading_need_the_admin_key(server):
    assert_openai_error(post(server, "v1/internal/model/unload"), 403, "only an admin")
    assert_openai_error(post(server, "v1/internal/model/load", {"model_name": MODEL}), 403, "only an admin")
    names = httpx.get(server.url + "v1/internal/model/list", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert MODEL in names["model_names"]
    assert_openai_error(post(server, "v1/internal/model/load", {"model_name": "../secret.gguf"}, key=ADMIN_KEY),
                        404, "no model")
    try:
        assert post(server, "v1/internal/model/unload", key=ADMIN_KEY).status_code == 200
        assert httpx.get(server.url + "health").json()["model_loaded"] is False
        assert_openai_error(post(server, CHAT, {"messages": HELLO}), 503, "no model is loaded")
    finally:
        loaded = post(server, "v1/internal/model/load", {"model_name": MODEL, "args": {"ctx_size": 2048}},
                      key=ADMIN_KEY)
    assert loaded.status_code == 200, loaded.text
    assert post(server, CHAT, {"messages": HELLO, "max_tokens": 2}).status_code == 200


def test_the_api_port_serves_the_same_api_without_cors(server):
    base = f"http://127.0.0.1:{server.api_port}/"
    reply = httpx.post(base + CHAT, json={"messages": HELLO, "max_tokens": 2},
                       headers={"Authorization": f"Bearer {OTHER_KEY}"}, timeout=120)
    assert reply.status_code == 200 and reply.json()["object"] == "chat.completion"
    assert httpx.get(base).status_code == 404          # the page is not there
    preflight = httpx.options(base + CHAT, headers={"Origin": "https://elsewhere.example",
                                                    "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_health_and_metrics(server):
    health = httpx.get(server.url + "health").json()
    assert health["model_loaded"] is True and health["model"] == MODEL and health["queue_depth"] >= 0
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda key: post(server, CHAT, {"messages": HELLO, "max_tokens": 4}, key=key),
                      [KEY, OTHER_KEY]))
    labels = {"backend": "llama.cpp", "model": MODEL}
    assert metric(server.url, "api_requests_total", route="/v1/chat/completions", status="200") >= 2
    assert metric(server.url, "api_requests_total", route="/v1/chat/completions", status="400") >= 1
    assert metric(server.url, "prompt_tokens_total", **labels) > 0
    assert metric(server.url, "generated_tokens_total", **labels) > 0
    assert metric(server.url, "time_to_first_token_seconds_count", **labels) >= 2
    assert metric(server.url, "tokens_per_second_count", **labels) >= 1
    text = httpx.get(server.url + "metrics").text
    assert "queue_depth" in text and "model_loaded 1.0" in text
