"""A chat request's reasoning: the template variables that switch it on or off, and how its
reply is split into reasoning and answer (modules/reasoning.py).

Requests switch it as llama.cpp's server and vLLM take it, `chat_template_kwargs:
{"enable_thinking": false}`, or with a top-level `enable_thinking` (text-generation-webui's
name); Anthropic's `thinking: {"type": "disabled"}` does the same. `reasoning_format:
"none"` (llama.cpp's name) leaves the reply whole.
"""
from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from modules.api.errors import ApiError
from modules.chat_prompt import FALLBACK_TEMPLATE
from modules.reasoning import DEFAULT_MARKERS, Markers, ReasoningStream, Split, generation_opens, markers_for, split_reasoning

SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class ReplyReasoning:
    markers: tuple[Markers, ...] = DEFAULT_MARKERS
    opened: bool = False          # the prompt opened the reasoning: the reply starts inside it
    parse: bool = True

    def split(self, text: str) -> Split:
        if not self.parse:
            return Split(text)
        return split_reasoning(text, self.markers, opened=self.opened, closing_alone=False)   # as streamed

    def stream(self) -> ReasoningStream | None:
        return ReasoningStream(self.markers, self.opened) if self.parse else None


def template_variables(extra: dict | None, enable_thinking: bool | None = None) -> dict:
    """The request's further variables for the chat template."""
    extra = extra or {}
    given = extra.get("chat_template_kwargs")
    if given is not None and not isinstance(given, dict):
        raise ApiError(400, "chat_template_kwargs must be an object.", param="chat_template_kwargs")
    variables = dict(given or {})
    switch = extra.get("enable_thinking", enable_thinking)
    if switch is not None:
        if not isinstance(switch, bool):
            raise ApiError(400, "enable_thinking must be true or false.", param="enable_thinking")
        variables.setdefault("enable_thinking", switch)
    return variables


def read_reply_reasoning(template: str | None, variables: dict, extra: dict | None) -> ReplyReasoning:
    """How the reply to this prompt is read: the template's markers, and whether its
    generation prompt leaves the model inside the reasoning (one cached render pair, so
    the first call for a template renders in a worker: call it off the event loop)."""
    if (extra or {}).get("reasoning_format") == "none":
        return ReplyReasoning(parse=False)
    source = template or FALLBACK_TEMPLATE
    pairs = tuple(sorted((k, v) for k, v in variables.items() if isinstance(k, str) and isinstance(v, SCALARS)))
    return ReplyReasoning(markers_for(source), bool(generation_opens(source, pairs)))


async def reply_reasoning(template: str | None, variables: dict, extra: dict | None) -> ReplyReasoning:
    return await run_in_threadpool(read_reply_reasoning, template, variables, extra)
