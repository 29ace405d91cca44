"""The chat view's "Thinking" blocks: a reply's reasoning (modules/reasoning.py) shown as a
collapsible block above its answer.

Gradio's Chatbot draws a message with metadata {"title", "status", "duration"} as such a
block, open while its status is "pending" and closed when it is "done" (until the person
clicks it). The block stays closed while the reasoning streams into it ("Thinking…", status
"done" so that it does not open by itself; a click opens it and it stays open), and its
title gets the duration once the reasoning has ended. The stored message keeps the
whole reply, reasoning and markers included; the duration is kept in its meta
("thinking_seconds"). Gradio's own Chatbot(reasoning_tags=...) is not used: it shows no
duration, knows nothing of replies that start inside the reasoning, and turns one message
into two after the server has numbered them, so edits would land on the wrong message.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterator

from modules.chat_prompt import FALLBACK_TEMPLATE
from modules.chat_tool_turns import display_entries
from modules.reasoning import KNOWN_MARKERS, ReasoningTimer, Split, generation_opens, replace_part, split_reasoning

THINKING = "Thinking"
THINKING_NOW = "Thinking…"            # the title while the reasoning is being written
SECONDS_KEY = "thinking_seconds"      # in a stored reply's meta


def thinking_block(reasoning: str, *, pending: bool, seconds: float | None = None) -> dict:
    metadata = {"title": THINKING_NOW if pending else THINKING, "status": "done"}
    if seconds is not None and not pending:
        metadata["duration"] = seconds
    return {"role": "assistant", "content": reasoning, "metadata": metadata}


def is_thinking(shown: dict) -> bool:
    return (shown.get("metadata") or {}).get("title") in (THINKING, THINKING_NOW)


def reply_view(split: Split, mark: str = "", *, writing: bool = False, seconds: float | None = None) -> list[dict]:
    """A reply as the chat shows it: its Thinking block (if it has reasoning), then its
    answer with the status mark ("(interrupted...)"). writing: it is being written."""
    if split.reasoning is None:
        return [{"role": "assistant", "content": split.answer + mark}]
    pending = writing and not split.closed
    entries = [thinking_block(split.reasoning, pending=pending, seconds=seconds)]
    if not (split.reasoning or pending):
        entries = []                   # "<think></think>": nothing was thought
    if split.answer + mark or not entries:
        entries.append({"role": "assistant", "content": split.answer + mark})
    return entries


def stored_split(message) -> Split:
    return split_reasoning(message.content, KNOWN_MARKERS, partial=message.status == "streaming")


def chat_entries(stored, marks: dict[str, str], running=frozenset()) -> list[tuple[dict, int | None]]:
    """display_entries (modules/chat_tool_turns.py) with each reply's reasoning as a
    Thinking block before its answer; both entries edit that reply (see edited_content)."""
    by_id = {message.id: message for message in stored}
    entries: list[tuple[dict, int | None]] = []
    for shown, message_id in display_entries(stored, marks, running):
        message = by_id.get(message_id)
        if message is None or message.role != "assistant" or shown.get("metadata"):
            entries.append((shown, message_id))
            continue
        mark = shown["content"][len(message.content):] if shown["content"].startswith(message.content) else ""
        view = reply_view(stored_split(message), mark, writing=message.status == "streaming",
                          seconds=(message.meta or {}).get(SECONDS_KEY))
        entries += [(entry, message_id) for entry in view]
    return entries


def edited_content(stored, entry: tuple[dict, int | None], text: str) -> str:
    """The reply's new content when one of its entries is edited: the Thinking block
    changes its reasoning, the answer its answer; the other part stays as it was."""
    shown, message_id = entry
    message = next((m for m in stored if m.id == message_id), None)
    if message is None or message.role != "assistant":
        return text
    split = split_reasoning(message.content, KNOWN_MARKERS)
    if split.reasoning is None:
        return text
    if is_thinking(shown):
        return replace_part(message.content, split, reasoning=text)
    return replace_part(message.content, split, answer=text)


class ReplyThinking:
    """The reply being written (modules/chat_service.py's _write), shown as its Thinking
    block and answer as it grows, and timed."""

    def __init__(self, opening: str = "", continued=None, clock: Callable[[], float] = time.monotonic):
        self.opening = opening             # how the prompt opened the reasoning ("<think>\n"), or ""
        self.timer = ReasoningTimer(clock)
        # the continued reply as the view shows it when this starts (being written)
        before = split_reasoning(continued.content, KNOWN_MARKERS, partial=True) if continued else Split("")
        self._earlier = (continued.meta or {}).get(SECONDS_KEY) if continued is not None else None
        self._thought_before = before.reasoning is not None and before.closed
        self._count = len(reply_view(before, writing=True))      # its entries at the end of the view

    @classmethod
    def for_reply(cls, door, settings, continue_message=None) -> "ReplyThinking":
        if continue_message is not None:
            return cls(continued=continue_message)
        backend = door.scheduler.backend
        source = settings.template or (backend.info.chat_template if backend is not None else None)
        return cls(generation_opens(source or FALLBACK_TEMPLATE, tuple(template_variables(settings).items())))

    def follow(self, updates: Iterator) -> Iterator:
        """The updates with the reply's text as the model's reasoning really began: after
        the opening marker the prompt wrote, so that the stored reply says so too."""
        for update in updates:
            if self.opening and update.text:
                update = dataclasses.replace(update, text=self.opening + update.text)
            yield update

    def show(self, shown: list, text: str, finished) -> None:
        """Puts the reply (its text so far; finished: its Finished event or None) at the end
        of `shown`, in place of what showed it before."""
        split = split_reasoning(text, KNOWN_MARKERS, partial=finished is None)
        if not self._thought_before:
            self.timer.observe(split)
            if finished is not None:
                self.timer.finish()
        view = reply_view(split, writing=finished is None, seconds=self.seconds)
        shown[len(shown) - self._count:] = view
        self._count = len(view)

    @property
    def seconds(self) -> float | None:
        if self._thought_before:
            return self._earlier
        if self.timer.seconds is None:
            return None
        return round(self.timer.seconds + (self._earlier or 0), 1)

    def meta(self) -> dict:
        """What the stored reply's meta keeps of its reasoning."""
        return {SECONDS_KEY: self.seconds} if self.seconds is not None else {}


def template_variables(settings) -> dict:
    """Variables the chat's template receives beyond the conversation."""
    return {"enable_thinking": bool(getattr(settings, "enable_thinking", True))}
