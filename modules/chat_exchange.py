"""Chats in and out: text-generation-webui's history JSON (both ways) and Markdown (out).

TGW keeps a chat as rows of [user message, reply]:

    {"internal": [["<|BEGIN-VISIBLE-CHAT|>", greeting], [user, reply], ...],
     "visible":  [["", html-escaped greeting], [html-escaped user, html-escaped reply], ...],
     "metadata": {"assistant_0": {"timestamp": "May 03, 2026 14:02"}, "user_1": {...}, ...}}

"internal" is the text the model read; "visible" is what its page showed (HTML-escaped, and
changed by output extensions), so an import takes "internal". A reply that called tools
keeps the calls and their results in metadata["assistant_<row>"]["tool_sequence"], the
row's own reply being the final answer. Files from before "internal" ({"data",
"data_visible"}) are read too, as TGW does.

An import goes through HistoryStore's public methods, so the importer's caps (chats,
stored characters) apply: it is checked whole before anything is stored, and a chat left
half-written by a failure on the way (a cap reached meanwhile in another tab) is deleted.
"""
from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass, field

from modules.history_store import MAX_MESSAGE_CHARS, Chat, HistoryStore

GREETING_MARK = "<|BEGIN-VISIBLE-CHAT|>"      # TGW's user half of the greeting's row
TGW_TIME = "%b %d, %Y %H:%M"                   # TGW's timestamps: "May 03, 2026 14:02"
TITLE_CHARS = 60
DEFAULT_MAX_BYTES = 10 * 2**20
# TGW names a chat's file by when it began; such a name says nothing, so the list shows the
# first message instead (as TGW's own list does).
_TIMESTAMP_NAME = re.compile(r"^\d{8}-\d{2}-\d{2}-\d{2}$")


class ChatImportError(ValueError):
    """A file that is not a TGW chat history; the message says what is wrong with it."""


@dataclass
class ImportedMessage:
    role: str
    content: str
    meta: dict = field(default_factory=dict)


# ---- export ----------------------------------------------------------------------------------

def to_tgw_history(chat: Chat) -> dict:
    """The chat as TGW's history dict: an opening reply (the greeting) becomes the
    BEGIN-VISIBLE-CHAT row, tool calls and results go into their row's tool_sequence."""
    rows: list[list[str]] = []
    metadata: dict = {}
    open_row = False                     # the last row still waits for its reply
    for message in chat.messages:
        calls = _calls(message.meta) if message.role == "assistant" else []
        if message.role == "user":
            rows.append([message.content, ""])
            open_row = True
            _stamp(metadata, "user", len(rows) - 1, message.created_at)
        elif message.role == "assistant" and not calls:
            if open_row:
                rows[-1][1] = message.content
            else:
                rows.append([GREETING_MARK if not rows else "", message.content])
            open_row = False
            _stamp(metadata, "assistant", len(rows) - 1, message.created_at)
        elif message.role in ("assistant", "tool"):
            if not open_row:
                rows.append(["", ""])
                open_row = True
            sequence = metadata.setdefault(f"assistant_{len(rows) - 1}", {}).setdefault("tool_sequence", [])
            sequence.append(_tool_step(message, calls))
        # "system" messages have no place in TGW's rows: Markdown keeps them.
    visible = [["" if user == GREETING_MARK else html.escape(user), html.escape(reply)] for user, reply in rows]
    return {"internal": rows, "visible": visible, "metadata": metadata}


def to_tgw_json(chat: Chat) -> str:
    """The file TGW writes (indented, Unicode as is), so TGW loads it as one of its own."""
    return json.dumps(to_tgw_history(chat), indent=4, ensure_ascii=False)


def to_markdown(chat: Chat, assistant_name: str | None = None, user_name: str = "You") -> str:
    """A readable transcript: the title, the character and mode, then each message under its
    speaker's name. Message text is kept as written (it is usually Markdown already)."""
    speaker = {"user": user_name, "assistant": assistant_name or chat.character or "Assistant",
               "system": "System"}
    lines = [f"# {chat.title}", ""]
    if chat.character:
        lines.append(f"- Character: {chat.character}")
    lines += [f"- Mode: {chat.mode}",
              f"- Started: {time.strftime('%Y-%m-%d %H:%M', time.localtime(chat.created_at))}", ""]
    for message in chat.messages:
        if message.role == "tool":
            name = message.meta.get("name") or "a tool"
            lines += [f"### Result of {name}", "", _fenced(message.content), ""]
            continue
        lines += [f"### {speaker[message.role]}", ""]
        if message.content:
            lines += [message.content, ""]
        for call in _calls(message.meta):
            lines += [f"Called {call['name']} with:", "",
                      _fenced(json.dumps(call.get("arguments", {}), ensure_ascii=False, indent=1)), ""]
        if message.status not in ("done", "streaming"):
            lines += [f"*({message.status})*", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---- import ------------------------------------------------------------------------------------

def read_tgw_history(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> list[ImportedMessage]:
    """The messages of a TGW history file, in order; ChatImportError says why not."""
    if len(data) > max_bytes:
        raise ChatImportError(f"The file is {len(data) / 2**20:.1f} MiB; a chat to import may be at most "
                              f"{max_bytes / 2**20:.0f} MiB.")
    try:
        history = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ChatImportError("The file is not text (UTF-8): a TGW chat history is a .json file.") from None
    except json.JSONDecodeError as exc:
        raise ChatImportError(f"The file is not valid JSON: {exc.msg} at line {exc.lineno}, "
                              f"column {exc.colno}.") from None
    except RecursionError:
        raise ChatImportError("The file's JSON is nested too deeply to be a chat history.") from None
    if not isinstance(history, dict):
        raise ChatImportError("The file is JSON but not a TGW chat history: it should be an object "
                              'with an "internal" list of [your message, reply] pairs.')
    key = "internal" if "internal" in history else "data"
    rows = _rows(history.get(key), key)
    metadata = history.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ChatImportError('"metadata" should be an object.')
    messages: list[ImportedMessage] = []
    for index, (user, reply) in enumerate(rows):
        if user and user != GREETING_MARK:
            messages.append(ImportedMessage("user", user))
        entry = metadata.get(f"assistant_{index}")
        if isinstance(entry, dict) and entry.get("tool_sequence"):
            messages += _tool_messages(entry["tool_sequence"], index)
        if reply:
            messages.append(ImportedMessage("assistant", reply))
    for message in messages:
        if len(message.content) > MAX_MESSAGE_CHARS:
            raise ChatImportError(f"A message in the file is {len(message.content):,} characters long; "
                                  f"the limit is {MAX_MESSAGE_CHARS:,}.")
    return messages


def import_tgw_chat(store: HistoryStore, owner: str, data: bytes, file_name: str = "", *,
                    mode: str = "chat", character: str = "", max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Stores the TGW history in `data` as a new chat of `owner`; returns its id. Refuses
    (ChatImportError, or the store's StorageLimitReached with its message) before storing
    anything when the file is not a history or would not fit the owner's caps."""
    messages = read_tgw_history(data, max_bytes)
    if not messages:
        raise ChatImportError("The file holds no messages: there is nothing to import.")
    store.check_new_chat(owner)
    store.check_room(owner, sum(len(m.content) for m in messages))
    chat_id = store.create_chat(owner, _title(file_name, messages), mode=mode, character=character)
    try:
        for message in messages:
            store.append_message(owner, chat_id, message.role, message.content, meta=message.meta)
    except BaseException:
        store.delete_chat(owner, chat_id)       # all of it or nothing
        raise
    return chat_id


# ---- helpers ---------------------------------------------------------------------------------

def _calls(meta: dict) -> list[dict]:
    calls = (meta or {}).get("tool_calls")
    return [c for c in calls if isinstance(c, dict) and isinstance(c.get("name"), str)] \
        if isinstance(calls, list) else []


def _tool_step(message, calls: list[dict]) -> dict:
    """One entry of TGW's tool_sequence: the calls of a reply (arguments as a JSON string,
    as TGW stores them), or one tool's result."""
    if message.role == "tool":
        return {"role": "tool", "content": message.content,
                "tool_call_id": str(message.meta.get("tool_call_id", ""))}
    step: dict = {"tool_calls": [
        {"id": str(c.get("id", "")), "type": "function",
         "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}), ensure_ascii=False)}}
        for c in calls]}
    if message.content.strip():
        step["content"] = message.content
    return step


def _stamp(metadata: dict, role: str, row: int, when: float) -> None:
    metadata.setdefault(f"{role}_{row}", {})["timestamp"] = time.strftime(TGW_TIME, time.localtime(when))


def _fenced(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text}\n{fence}"


def _rows(rows, key: str) -> list[tuple[str, str]]:
    if not isinstance(rows, list):
        raise ChatImportError('The file is JSON but not a TGW chat history: it has no "internal" list '
                              "of [your message, reply] pairs.")
    for number, row in enumerate(rows, 1):
        if not (isinstance(row, list) and len(row) == 2):
            raise ChatImportError(f'Entry {number} of "{key}" is not a [your message, reply] pair.')
        if not all(isinstance(text, str) for text in row):
            raise ChatImportError(f'Entry {number} of "{key}" holds something other than text.')
    return [(user, reply) for user, reply in rows]


def _tool_messages(sequence, row: int) -> list[ImportedMessage]:
    """TGW's tool_sequence of one row as our assistant (with tool_calls) and tool messages."""
    where = f'metadata "assistant_{row}" tool_sequence'
    if not isinstance(sequence, list):
        raise ChatImportError(f"The {where} is not a list.")
    names: dict[str, str] = {}
    messages = []
    for step in sequence:
        if isinstance(step, dict) and isinstance(step.get("tool_calls"), list):
            calls = [_call(call, where) for call in step["tool_calls"]]
            names.update((c["id"], c["name"]) for c in calls)
            messages.append(ImportedMessage("assistant", _text(step.get("content", ""), where),
                                            {"tool_calls": calls}))
        elif isinstance(step, dict) and step.get("role") == "tool":
            call_id = _text(step.get("tool_call_id", ""), where)
            messages.append(ImportedMessage("tool", _text(step.get("content", ""), where),
                                            {"tool_call_id": call_id, "name": names.get(call_id, ""), "ok": True}))
        else:
            raise ChatImportError(f"An entry of the {where} is neither tool calls nor a tool's result.")
    return messages


def _call(call, where: str) -> dict:
    function = call.get("function") if isinstance(call, dict) else None
    if not (isinstance(function, dict) and isinstance(function.get("name"), str)):
        raise ChatImportError(f"A tool call in the {where} has no function name.")
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            raise ChatImportError(f"A tool call's arguments in the {where} are not JSON.") from None
    if not isinstance(arguments, dict):
        raise ChatImportError(f"A tool call's arguments in the {where} are not a JSON object.")
    return {"id": _text(call.get("id", ""), where), "name": function["name"], "arguments": arguments}


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise ChatImportError(f"The {where} holds something other than text where text belongs.")
    return value


def _title(file_name: str, messages: list[ImportedMessage]) -> str:
    stem = re.sub(r"\.json$", "", (file_name or "").rsplit("/", 1)[-1], flags=re.IGNORECASE).strip()
    if stem and not _TIMESTAMP_NAME.match(stem):
        return stem
    first = next((m.content for m in messages if m.role == "user"), "") or "Imported chat"
    line = " ".join(first.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"
