"""Chat history -> the prompt the model sees, trimmed to fit its context.

The prompt is rendered with a Jinja2 chat template (the model's own, or one the user
chose) in a sandbox. When the conversation no longer fits, the oldest turns go first;
the system prompt and the newest message always stay, and the caller is told how many
turns were left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from modules.reasoning import prompt_messages
from modules.template_render import TemplateError, render_chat_template

# Used when neither the model nor the user gives a template.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


class PromptTooLong(ValueError):
    pass


@dataclass
class BuiltPrompt:
    text: str
    n_tokens: int
    dropped_messages: int          # oldest messages left out to fit the context

    @property
    def notice(self) -> str:
        if not self.dropped_messages:
            return ""
        return (f"The conversation is longer than the model's context: the {self.dropped_messages} "
                f"oldest message(s) were left out of the prompt (the system prompt was kept).")


def build_chat_prompt(
    messages: list[dict],
    template: str | None,
    count_tokens: Callable[[str], int],
    budget: int,
    *,
    bos_token: str = "",
    eos_token: str = "",
    continue_last: bool = False,
    tools: list | None = None,
    variables: dict | None = None,
) -> BuiltPrompt:
    """messages: [{"role": "system"|"user"|"assistant", "content": str}, ...].
    budget: tokens the prompt may use (the context minus room for the reply).
    continue_last: the last message is an assistant reply to be continued, not closed.
    tools: function descriptions for templates that take them (the `tools` variable).
    variables: further template variables (enable_thinking).
    Earlier replies' reasoning is left out unless the template takes it (modules/reasoning.py)."""
    template = template or FALLBACK_TEMPLATE
    messages = prompt_messages(messages, template, keep_last=continue_last)
    system = [m for m in messages if m["role"] == "system"][:1]
    turns = [m for m in messages if m["role"] != "system"]
    dropped = 0
    while True:
        text = _render(template, system + turns, bos_token, eos_token, continue_last, tools, variables)
        n_tokens = count_tokens(text)
        if n_tokens <= budget:
            return BuiltPrompt(text, n_tokens, dropped)
        if len(turns) <= 1:
            raise PromptTooLong(
                f"The message is too long for the model's context: the prompt needs {n_tokens} "
                f"tokens, and {budget} are available once room is kept for the reply. Shorten the "
                f"message or the system prompt, lower max_new_tokens, or load the model with a "
                f"larger --ctx-size.")
        # Drop the oldest turn; drop a following assistant reply with it, so the
        # conversation still starts with a user message (some templates require it).
        turns.pop(0)
        dropped += 1
        if len(turns) > 1 and turns[0]["role"] == "assistant":
            turns.pop(0)
            dropped += 1


_CUT = "\u0000cut-here\u0000"     # marks where a continued message ends in the render


def _render(template: str, messages: list[dict], bos: str, eos: str, continue_last: bool,
            tools: list | None = None, variables: dict | None = None) -> str:
    extra = dict(variables or {}, **({"tools": tools} if tools else {}))   # tools undefined unless given
    if not continue_last:
        return render_chat_template(template, messages, add_generation_prompt=True,
                                    bos_token=bos, eos_token=eos, **extra)
    # Render the partial last message as a finished one with a marker at its end, then
    # cut there: the closing markers go, and the model carries on writing that message.
    last = dict(messages[-1], content=messages[-1]["content"] + _CUT)
    rendered = render_chat_template(template, messages[:-1] + [last], add_generation_prompt=False,
                                    bos_token=bos, eos_token=eos, **extra)
    cut = rendered.rfind(_CUT)
    if cut == -1:
        raise TemplateError("The template does not include the last message, so it cannot be continued.")
    return rendered[:cut]
