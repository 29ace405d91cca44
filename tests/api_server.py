"""The real server with --api on loopback, for the API tests (tests/test_api_*.py).

Greedy settings come from the test settings file, as for the browser tests; requests that
need sampling say so. Two API keys (two people for the limits) and an admin key.
"""
from __future__ import annotations

import time

import httpx

from tests.browser.conftest import ServerProcess, free_port

KEY = "test-key-alice-0123456789"
OTHER_KEY = "test-key-bob-9876543210"
ADMIN_KEY = "test-admin-key-abcdefghij"
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
# A ChatML template that shows tools the Hermes way (SmolLM2's own ignores them).
HERMES_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\nYou can call these tools:\n"
    "{% for t in tools %}{{ t.function | tojson }}\n{% endfor %}"
    'Call one as <tool_call>{"name": NAME, "arguments": {...}}</tool_call>.<|im_end|>\n{% endif %}'
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>{{ c.function | tojson }}</tool_call>{% endfor %}"
    "{% else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def serve(workdir, extra_args=(), **kwargs):
    """Yields a started ServerProcess with the API on; its .api_port serves the API alone."""
    api_port = free_port()
    server = ServerProcess(workdir, extra_args=["--api", "--api-port", str(api_port), *extra_args], **kwargs)
    server.api_port = api_port
    try:
        server.wait_ready()
        wait_for(lambda: _answers(f"http://127.0.0.1:{api_port}/health"), 30, "the --api-port server")
        yield server
    finally:
        server.stop()


def serve_with_keys(workdir, extra_args=(), **kwargs):
    yield from serve(workdir, ["--api-key", f"{KEY},{OTHER_KEY}", "--admin-key", ADMIN_KEY, *extra_args], **kwargs)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(condition, timeout: float, what: str, interval: float = 0.1):
    """Polls `condition` until it returns something true; fails with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def metric(base_url: str, name: str, **labels) -> float:
    """The value of one sample in /metrics (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families
    text = httpx.get(base_url.rstrip("/") + "/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
