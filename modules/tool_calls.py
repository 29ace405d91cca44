"""Tool calls in a model's reply, by the conventions of its chat template.

Models are taught one way of writing a call, and their templates show which:
- ChatML/Hermes (Qwen, Hermes, SmolLM3...): <tool_call>{"name": ..., "arguments": {...}}</tool_call>
- Llama 3.1+: a bare JSON object {"name": ..., "parameters": {...}}, or after <|python_tag|>
- Mistral: [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...] (or [TOOL_CALLS]name[ARGS]{...})

One module for the API and the Chat tab, so both read calls the same way. Parsing never
raises: text that does not hold a well-formed call stays text.
"""
from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

HERMES, LLAMA3, MISTRAL = "hermes", "llama3", "mistral"
HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
PYTHON_TAG = "<|python_tag|>"
MISTRAL_MARK = "[TOOL_CALLS]"
MARKERS = (HERMES_OPEN, PYTHON_TAG, MISTRAL_MARK)
_decoder = json.JSONDecoder()


@dataclass
class ToolCall:
    name: str
    arguments: dict
    id: str = ""

    def __post_init__(self):
        if not self.id:
            self.id = "call_" + secrets.token_hex(12)

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)


def template_style(template: str | None) -> str:
    """Which convention a chat template teaches; Hermes when it does not say (the most
    common one among open models, and what the fallback ChatML template implies)."""
    source = template or ""
    if MISTRAL_MARK in source:
        return MISTRAL
    if PYTHON_TAG in source or ("tools" in source and '"parameters"' in source and HERMES_OPEN not in source):
        return LLAMA3
    return HERMES


def parse_tool_calls(text: str, tool_names: set[str] | frozenset[str] | None = None) -> tuple[str, list[ToolCall]]:
    """(the text outside the calls, the calls). A bare JSON object counts as a call only
    when the whole reply is one and it names a known tool, so a JSON answer stays an answer."""
    calls: list[ToolCall] = []
    if HERMES_OPEN in text:
        content, calls = _parse_hermes(text)
    elif MISTRAL_MARK in text:
        before, _, after = text.partition(MISTRAL_MARK)
        calls = _parse_mistral(after)
        content = before
    elif PYTHON_TAG in text:
        before, _, after = text.partition(PYTHON_TAG)
        calls = _json_calls(after)
        content = before
    else:
        content = text
        stripped = text.strip()
        if stripped.startswith(("{", "[")):
            found = _json_calls(stripped)
            if found and (tool_names is None or all(c.name in tool_names for c in found)):
                calls, content = found, ""
    if not calls:
        return text, []
    return content.strip(), calls


def _parse_hermes(text: str) -> tuple[str, list[ToolCall]]:
    calls, kept = [], []
    position = 0
    for match in re.finditer(re.escape(HERMES_OPEN) + r"(.*?)(?:" + re.escape(HERMES_CLOSE) + r"|$)", text, re.S):
        found = _json_calls(match.group(1).strip())
        if not found:
            return text, []          # a malformed call: the reply is returned as text
        kept.append(text[position:match.start()])
        position = match.end()
        calls.extend(found)
    kept.append(text[position:])
    return "".join(kept), calls


def _parse_mistral(text: str) -> list[ToolCall]:
    text = text.strip()
    if text.startswith("["):
        return _json_calls(text)
    calls = []      # newer templates: name[ARGS]{...}, possibly repeated
    for part in text.split(MISTRAL_MARK):
        name, sep, args = part.partition("[ARGS]")
        if not sep:
            return []
        name = name.split("[CALL_ID]")[0].strip()
        arguments = _json_value(args.strip())
        if not name or not isinstance(arguments, dict):
            return []
        calls.append(ToolCall(name, arguments))
    return calls


def _json_calls(text: str) -> list[ToolCall]:
    """Calls from JSON: one object, a list of objects, or objects separated by ';'."""
    values, rest = [], text.strip()
    while rest:
        try:
            value, end = _decoder.raw_decode(rest)
        except ValueError:
            return []
        values.extend(value if isinstance(value, list) else [value])
        rest = rest[end:].lstrip().lstrip(";").lstrip()
    calls = [_call_from_object(value) for value in values]
    return calls if calls and all(calls) else []


def _call_from_object(value) -> ToolCall | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):          # {"type": "function", "function": {...}}
        value = value["function"]
    name = value.get("name")
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        arguments = _json_value(arguments)
    if not isinstance(name, str) or not name or not isinstance(arguments, dict):
        return None
    return ToolCall(name, arguments)


def _json_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None


class ToolCallStream:
    """Streams a reply's plain text while holding back what may be a tool call, which is
    parsed once the reply ends. feed() returns text safe to show now; finish() returns
    the rest of the text and the calls."""

    def __init__(self, tool_names: set[str] | frozenset[str] | None = None):
        self.tool_names = tool_names
        self._pending = ""       # text that may be the start of a marker
        self._held = ""          # from a marker (or a leading '{') to the end
        self._shown_any = False

    def feed(self, delta: str) -> str:
        if self._held:
            self._held += delta
            return ""
        text = self._pending + delta
        starts = [i for i in (text.find(m) for m in MARKERS) if i >= 0]
        if starts:
            cut = min(starts)
            self._held, self._pending = text[cut:], ""
            return self._show(text[:cut])
        if not self._shown_any:
            stripped = text.lstrip()
            if not stripped:
                self._pending = text
                return ""
            if stripped[0] in "{[":
                self._held, self._pending = text, ""
                return ""
        keep = _marker_prefix_length(text)
        self._pending = text[len(text) - keep:] if keep else ""
        return self._show(text[:len(text) - keep])

    def _show(self, text: str) -> str:
        if text:
            self._shown_any = True
        return text

    def finish(self) -> tuple[str, list[ToolCall]]:
        held, pending = self._held, self._pending
        self._held = self._pending = ""
        if not held:
            return pending, []
        content, calls = parse_tool_calls(held, self.tool_names)
        return (content if calls else held), calls


def _marker_prefix_length(text: str) -> int:
    """Length of the longest end of `text` that could begin a marker."""
    best = 0
    for marker in MARKERS:
        for length in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:length]):
                best = length
                break
    return best


def messages_for_template(messages: list[dict]) -> list[dict]:
    """Messages as chat templates expect them (transformers' convention): a tool call's
    arguments as a mapping, not the JSON string the OpenAI API carries."""
    out = []
    for message in messages:
        calls = message.get("tool_calls")
        if calls:
            message = dict(message, tool_calls=[_template_call(call) for call in calls])
        out.append(message)
    return out


def _template_call(call: dict) -> dict:
    function = dict(call.get("function") or {})
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        parsed = _json_value(arguments)
        function["arguments"] = parsed if isinstance(parsed, dict) else arguments
    return dict(call, function=function)
