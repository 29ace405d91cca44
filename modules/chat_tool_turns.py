"""Tool calls in a stored chat: how the model reads them, and how the Chat tab shows them.

A reply that calls tools is stored as an assistant message with meta {"tool_calls": [{"id",
"name", "arguments"}]} (its content is the text outside the calls), then one "tool" message
per result with meta {"tool_call_id", "name", "ok"}, then the model's next message.

The model reads them through its chat template. A template that knows tools (it handles
`tool_calls`) gets them as transformers passes them: `tools`, assistant messages with
`tool_calls` and "tool" messages. A template that does not (the fallback ChatML, and
chat-instruct's transcript) gets them as text in the Hermes convention that
modules/tool_calls.py reads: the tools described in the system message, each call as
<tool_call>...</tool_call> in the reply, each result as <tool_response>...</tool_response>
from the user.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable

from modules.chat_tools import ToolSet
from modules.tool_calls import HERMES, HERMES_CLOSE, HERMES_OPEN, ToolCall, ToolCallStream, template_style

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
INSTRUCTIONS = (
    "# Tools\n\nYou may call one or more functions to help with the user's request. The "
    "functions are described in JSON within <tools></tools> tags:\n<tools>\n{tools}\n</tools>\n\n"
    "To call a function, write a JSON object with its name and arguments within "
    "<tool_call></tool_call> tags:\n<tool_call>\n{{\"name\": <function name>, \"arguments\": "
    "<arguments as a JSON object>}}\n</tool_call>\nThe result comes back within "
    "<tool_response></tool_response> tags.")


@dataclass
class ToolTurns:
    """How one reply uses the chat's tools."""
    toolset: ToolSet = field(default_factory=ToolSet)
    native: bool = False          # the template takes tools, tool_calls and "tool" messages
    grammar: str = ""             # for a required call (llama.cpp)
    style: str = HERMES
    notices: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.toolset)

    def template_tools(self) -> list[dict] | None:
        return self.toolset.definitions() if self.active and self.native else None

    def with_instructions(self, messages: list[dict]) -> list[dict]:
        """The prompt's messages, with the tools described in the system message when the
        template will not describe them itself."""
        if not self.active or self.native:
            return messages
        described = "\n".join(json.dumps(d, ensure_ascii=False) for d in self.toolset.definitions())
        text = INSTRUCTIONS.format(tools=described)
        if messages and messages[0]["role"] == "system":
            return [dict(messages[0], content=messages[0]["content"] + "\n\n" + text), *messages[1:]]
        return [{"role": "system", "content": text}, *messages]


def plan_turns(toolset: ToolSet, choice: str, template_source: str, mode: str, loader: str | None,
               text_only: bool = False) -> ToolTurns:
    """text_only: the history goes through something that knows only user and assistant
    messages (an extension's history_modifier)."""
    native = "tool_calls" in template_source and mode != "chat-instruct" and not text_only
    turns = ToolTurns(toolset, native, style=template_style(template_source) if native else HERMES)
    turns.notices += toolset.problems
    if choice == "required" and toolset:
        turns.grammar = _required_grammar(turns, loader)
    return turns


def _required_grammar(turns: ToolTurns, loader: str | None) -> str:
    # The API's grammar for a compulsory call, so both read back the same way.
    from modules.api.structured import GRAMMAR_LOADERS, tool_call_grammar
    if loader not in GRAMMAR_LOADERS:
        turns.notices.append(f"A required tool call needs a loader that enforces grammars here (llama.cpp, "
                             f"Transformers or GPTQ; the model uses {loader}); the model may call a tool or not.")
        return ""
    try:
        return tool_call_grammar(turns.style, turns.toolset.functions(), loader=loader)
    except Exception as exc:           # a schema the grammar cannot express: say so, go on
        turns.notices.append(f"The tools cannot be made a required call: {exc}; the model may call one or not.")
        return ""


class ReplyWatch:
    """The part of a reply being written that can be shown: what may be a tool call is
    held back (modules/tool_calls.py's ToolCallStream) until the reply ends."""

    def __init__(self, names: frozenset[str]):
        self._names = names
        self._stream = ToolCallStream(names)
        self._fed = ""
        self.shown = ""

    def update(self, text: str) -> str:
        """text: the reply so far."""
        if not text.startswith(self._fed):       # rewritten (not only grown): read it afresh
            self.__init__(self._names)
        self.shown += self._stream.feed(text[len(self._fed):])
        self._fed = text
        return self.shown

    def finish(self) -> tuple[str, list[ToolCall]]:
        """(the text outside the calls, the calls)."""
        rest, calls = self._stream.finish()
        return ((self.shown + rest).strip(), calls) if calls else (self.shown + rest, calls)


# ---- the model's view -------------------------------------------------------------------------

def template_messages(stored, native: bool, text_of: Callable) -> list[dict]:
    """Stored messages (user, assistant, tool) as the template's messages."""
    out: list[dict] = []
    for message in stored:
        calls = _stored_calls(message)
        text = text_of(message)
        if message.role == "user":
            out.append({"role": "user", "content": text})
        elif message.role == "assistant" and calls and native:
            out.append({"role": "assistant", "content": text, "tool_calls": [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in calls]})
        elif message.role == "assistant":
            written = [f"{HERMES_OPEN}\n{_call_json(c)}\n{HERMES_CLOSE}" for c in calls]
            out.append({"role": "assistant", "content": "\n".join(filter(None, [text, *written]))})
        elif message.role == "tool" and native:
            out.append({"role": "tool", "content": text, "tool_call_id": message.meta.get("tool_call_id", ""),
                        "name": message.meta.get("name", "")})
        elif message.role == "tool":
            response = f"<tool_response>\n{text}\n</tool_response>"
            if out and out[-1].get("tool_responses"):
                out[-1] = dict(out[-1], content=out[-1]["content"] + "\n" + response)
            else:
                out.append({"role": "user", "content": response, "tool_responses": True})
    for message in out:
        message.pop("tool_responses", None)
    return out


def stored_calls(calls: list[ToolCall]) -> list[dict]:
    return [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]


def _stored_calls(message) -> list[dict]:
    calls = (getattr(message, "meta", None) or {}).get("tool_calls")
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


def _call_json(call: dict) -> str:
    return json.dumps({"name": call["name"], "arguments": call["arguments"]}, ensure_ascii=False)


# ---- the Chat tab's view ------------------------------------------------------------------------

def display_entries(stored, marks: dict[str, str], running=frozenset()) -> list[tuple[dict, int | None]]:
    """(what the chat view shows, the stored message it edits or None) for each entry: a
    call and its result show as one collapsible block, which cannot be edited; `running`:
    ids of calls whose results are still to come."""
    results = {m.meta.get("tool_call_id"): m for m in stored if m.role == "tool"}
    answered: set = set()
    entries: list[tuple[dict, int | None]] = []
    for message in stored:
        if message.role == "user":
            entries.append(({"role": "user", "content": message.content}, message.id))
        elif message.role == "assistant":
            calls = _stored_calls(message)
            text = message.content + marks.get(message.status, "")
            if text or not calls:
                entries.append(({"role": "assistant", "content": text}, message.id))
            for call in calls:
                result = results.get(call.get("id"))
                answered.add(call.get("id"))
                entries.append((call_block(call.get("name"), call.get("arguments"), result,
                                           running=call.get("id") in running), None))
        elif message.role == "tool" and message.meta.get("tool_call_id") not in answered:
            entries.append((call_block(message.meta.get("name"), None, message), None))
    return entries


def call_block(name, arguments, result=None, running: bool = False) -> dict:
    """One call as a collapsible block (Gradio's metadata title), its text shown literally."""
    shown = name if isinstance(name, str) and TOOL_NAME.match(name) else "unknown tool"
    failed = result is not None and not result.meta.get("ok", True)
    parts = []
    if arguments is not None:
        parts.append("Arguments:\n" + _fenced(json.dumps(arguments, ensure_ascii=False, indent=1)))
    if result is not None:
        parts.append("Result:\n" + _fenced(result.content))
    elif running:
        parts.append("Running...")
    else:
        parts.append("No result (the reply stopped before the tool ran).")
    title = f"Tool call: {shown}" + (" (failed)" if failed else "")
    return {"role": "assistant", "content": "\n\n".join(parts),
            "metadata": {"title": title, "status": "pending" if running else "done"}}


def _fenced(text: str) -> str:
    """A code block longer-fenced than any run of backticks in the text: shown as is."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"
