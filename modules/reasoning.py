"""A reply's reasoning ("thinking") apart from its answer.

Reasoning models write their thoughts between markers before the answer: `<think>`...
`</think>` (Qwen3, DeepSeek-R1, QwQ, GLM), or markers of their own that their chat
template reveals (KNOWN_MARKERS). The reasoning is read only at the start of a reply
(after whitespace); a second block later in the answer is left as answer text.

A template may open the reasoning in the prompt itself (DeepSeek-R1's generation prompt
ends with `<think>\\n`), so the model's reply starts inside it: `generation_opens`
finds that out once per template by rendering a tiny conversation. A reply whose text has
a closing marker and no opening one before it is read the same way, so a stored reply
needs nothing else to be split again.

The chat shows the reasoning as a "Thinking" block (modules/chat_display.py); the API
returns it as `reasoning_content`; earlier turns reach the template without it unless the
template takes it (`prompt_messages`).
"""
from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from typing import Callable

from modules.template_render import TemplateError, render_chat_template


@dataclass(frozen=True)
class Markers:
    open: str
    close: str
    answer_start: str = ""       # what may stand between the closing marker and the answer


THINK = Markers("<think>", "</think>")
# Reasoning markers of other model families, used when their template mentions them.
# GPT-OSS's channels are special tokens: they reach the text only with skip_special_tokens off.
KNOWN_MARKERS = (
    THINK,
    Markers("<seed:think>", "</seed:think>"),                       # Seed-OSS
    Markers("[THINK]", "[/THINK]"),                                 # Magistral
    Markers("◁think▷", "◁/think▷"),                                 # Kimi
    Markers("<|START_THINKING|>", "<|END_THINKING|>"),              # Command A Reasoning
    Markers("<|channel|>analysis<|message|>", "<|end|>",
            "<|start|>assistant<|channel|>final<|message|>"),     # GPT-OSS (harmony)
)
DEFAULT_MARKERS = (THINK,)
# Template fields that hand an earlier reply's reasoning back to the template.
REASONING_FIELDS = (("reasoning_content", re.compile(r"reasoning_content")),
                    ("thinking", re.compile(r"""message\s*(?:\.\s*thinking\b|\[\s*['"]thinking['"]\s*\])""")))


@dataclass(frozen=True)
class Split:
    answer: str
    reasoning: str | None = None       # None: the reply has no reasoning
    closed: bool = True                # False: the reply is still inside its reasoning
    reasoning_span: tuple[int, int] = (0, 0)   # where the reasoning lies in the text
    answer_start: int = 0              # where the answer begins in the text


def markers_for(template_source: str | None) -> tuple[Markers, ...]:
    """`<think>` always, plus the known markers the template's source mentions."""
    source = template_source or ""
    return DEFAULT_MARKERS + tuple(m for m in KNOWN_MARKERS if m is not THINK and m.open in source)


def split_reasoning(text: str, markers: tuple[Markers, ...] = DEFAULT_MARKERS, *, opened: bool = False,
                    partial: bool = False, closing_alone: bool = True) -> Split:
    """The reasoning and the answer of a reply (or of the reply so far).

    opened: the prompt opened the reasoning, so the reply starts inside it.
    partial: the reply is still being written: what may be the start of a marker is held
    back (shown neither as reasoning nor as answer) until the next text settles it.
    closing_alone: a closing marker with no opening marker before it ends reasoning that
    the prompt opened (what a stored reply of such a template looks like)."""
    start = len(text) - len(text.lstrip())
    if opened:
        return _inside(text, 0, markers, partial)
    rest = text[start:]
    for pair in markers:
        if rest.startswith(pair.open):
            return _inside(text, start + len(pair.open), (pair,), partial)
    if partial and (not rest or any(pair.open.startswith(rest) for pair in markers)):
        return Split("", None, True, (0, 0), len(text))          # "", "\n<thi": wait for more
    if closing_alone:
        found = _first_close(text, 0, markers)
        if found is not None and not any(pair.open in text[:found[0]] for pair in markers):
            return _inside(text, 0, markers, partial)
    return Split(text)


def _inside(text: str, begin: int, markers: tuple[Markers, ...], partial: bool) -> Split:
    found = _first_close(text, begin, markers)
    if found is None:
        end = len(text)
        if partial:      # a closing marker may be arriving: "...</thi"
            end -= max((_held_back(text, pair.close) for pair in markers), default=0)
        reasoning = text[begin:end]
        return Split("", reasoning.strip(), False, _span(text, begin, end), len(text))
    close_at, pair = found
    after = close_at + len(pair.close)
    answer_at = len(text) - len(text[after:].lstrip())
    if pair.answer_start:
        tail = text[answer_at:]
        if tail.startswith(pair.answer_start):
            answer_at += len(pair.answer_start)
        elif partial and tail and pair.answer_start.startswith(tail):
            answer_at = len(text)
    return Split(text[answer_at:], text[begin:close_at].strip(), True, _span(text, begin, close_at), answer_at)


def _first_close(text: str, begin: int, markers) -> tuple[int, Markers] | None:
    hits = [(text.find(pair.close, begin), pair) for pair in markers]
    hits = [(at, pair) for at, pair in hits if at >= 0]
    return min(hits, key=lambda hit: hit[0]) if hits else None


def _held_back(text: str, marker: str) -> int:
    """How many characters at the end of `text` are the start of `marker`."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-size:]):
            return size
    return 0


def _span(text: str, begin: int, end: int) -> tuple[int, int]:
    """(begin, end) narrowed to the reasoning without its surrounding whitespace."""
    inner = text[begin:end]
    if not inner.strip():
        return begin, begin
    lead = len(inner) - len(inner.lstrip())
    return begin + lead, begin + len(inner.rstrip())


def replace_part(text: str, split: Split, *, reasoning: str | None = None, answer: str | None = None) -> str:
    """The reply with its reasoning or its answer replaced and the markers kept (an edit of
    one of the two parts leaves the other as it was)."""
    if reasoning is not None and split.reasoning is not None:
        begin, end = split.reasoning_span
        text = text[:begin] + reasoning + text[end:]
        split = split_reasoning(text, KNOWN_MARKERS)
    if answer is not None:
        text = text[:split.answer_start] + answer
    return text


# ---- the template --------------------------------------------------------------------------

PROBE = [{"role": "user", "content": "Hello."}]


@functools.lru_cache(maxsize=64)
def generation_opens(template_source: str, variables: tuple = ()) -> str:
    """The opening marker (with what follows it) that the template's generation prompt ends
    inside, e.g. "<think>\\n"; "" when the model starts its reply outside reasoning.
    variables: (name, value) pairs for the template (enable_thinking). Cached: one render
    pair per template and setting."""
    try:
        values = dict(variables)
        without = render_chat_template(template_source, PROBE, add_generation_prompt=False, **values)
        with_prompt = render_chat_template(template_source, PROBE, add_generation_prompt=True, **values)
    except TemplateError:
        return ""
    if not with_prompt.startswith(without):
        return ""
    added = with_prompt[len(without):]
    for pair in markers_for(template_source):
        at = added.rfind(pair.open)
        if at >= 0 and pair.close not in added[at:]:
            return added[at:]
    return ""


def reasoning_field(template_source: str | None) -> str | None:
    """The message field through which the template takes an earlier reply's reasoning
    (Qwen3's and DeepSeek's `reasoning_content`, GPT-OSS's `thinking`), or None."""
    for name, pattern in REASONING_FIELDS:
        if pattern.search(template_source or ""):
            return name
    return None


def prompt_messages(messages: list[dict], template_source: str | None, *, keep_last: bool = False) -> list[dict]:
    """The messages for the template with each assistant reply's reasoning taken out of its
    content; handed over as the template's reasoning field when it takes one (the template
    then decides which turns show it), else left out. keep_last: the last message is a
    reply being continued, given as written."""
    field = reasoning_field(template_source)
    markers = KNOWN_MARKERS
    out = []
    for index, message in enumerate(messages):
        content = message.get("content")
        last = index == len(messages) - 1
        if message.get("role") != "assistant" or not isinstance(content, str) or (keep_last and last):
            out.append(message)
            continue
        split = split_reasoning(content, markers)
        if split.reasoning is None:
            out.append(message)
            continue
        changed = dict(message, content=split.answer)
        if field and not changed.get(field):
            changed[field] = split.reasoning
        out.append(changed)
    return out


# ---- timing ------------------------------------------------------------------------------------

class ReasoningTimer:
    """When a reply's reasoning began and ended, from the splits of the reply so far."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.started: float | None = None
        self.ended: float | None = None

    def observe(self, split: Split) -> None:
        if split.reasoning is None:
            return
        now = self._clock()
        if self.started is None:
            self.started = now
        if split.closed and self.ended is None:
            self.ended = now

    def finish(self) -> None:
        """The reply ended (perhaps still inside its reasoning)."""
        if self.started is not None and self.ended is None:
            self.ended = self._clock()

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return round(self.ended - self.started, 1)


class ReasoningStream:
    """A reply's text deltas as (reasoning delta, answer delta), for a streamed API reply.
    What it has sent is never taken back: a reply that does not start with reasoning is
    answer throughout."""

    def __init__(self, markers: tuple[Markers, ...] = DEFAULT_MARKERS, opened: bool = False):
        self.markers, self.opened = markers, opened
        self.text = ""
        self._reasoning = self._answer = ""

    def feed(self, delta: str) -> tuple[str, str]:
        self.text += delta
        return self._emit(partial=True)

    def finish(self) -> tuple[str, str]:
        return self._emit(partial=False)

    def _emit(self, partial: bool) -> tuple[str, str]:
        split = split_reasoning(self.text, self.markers, opened=self.opened, partial=partial, closing_alone=False)
        reasoning, answer = split.reasoning or "", split.answer
        new_reasoning = reasoning[len(self._reasoning):] if reasoning.startswith(self._reasoning) else ""
        new_answer = answer[len(self._answer):] if answer.startswith(self._answer) else ""
        self._reasoning += new_reasoning
        self._answer += new_answer
        return new_reasoning, new_answer
