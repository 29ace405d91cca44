"""Server-sent events: OpenAI's bare `data:` lines ending with [DONE], Anthropic's named events."""
from __future__ import annotations

import json

DONE = "data: [DONE]\n\n"


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def data(value) -> str:
    return f"data: {_json(value)}\n\n"


def event(name: str, value) -> str:
    return f"event: {name}\ndata: {_json(value)}\n\n"
