"""Every hook an extension may define: one function per hook, with text-generation-webui's
names and signatures, so a script written for it runs here unmodified.

This module is the specification (as Simon Willison's `llm` keeps its hookspecs.py): each
function below shows the signature an extension's `script.py` defines and says when the
hook is called and what its return value changes. The functions are never called; the
registry (modules/extensions.py) and the request runner (modules/extension_runner.py) read
HOOKS. docs/extensions.md carries the table `hooks_markdown()` writes
(`python -m modules.extension_hooks` prints it; a test keeps the two equal).

Kinds:
- "chain": every enabled extension that defines it runs, in the order they were enabled,
  each receiving what the previous one returned.
- "first": only the first enabled extension that defines it is used.
- "page": runs when the page is built, not per request; "once": when first switched on.
Per-request hooks run in a worker thread with a time limit (--extension-timeout); a hook
that raises, returns the wrong type or runs past the limit is skipped for that request.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class HookSpec:
    name: str
    kind: str                 # "chain" | "first" | "page"
    per_request: bool         # runs for a request, under the time limit
    limit: str                # the time limit it runs under, in words
    signature: str
    doc: str


HOOKS: dict[str, HookSpec] = {}


def _hook(kind: str, per_request: bool = True, limit: str = "--extension-timeout") -> Callable:
    def register(fn: Callable) -> Callable:
        signature = f"{fn.__name__}{inspect.signature(fn)}".replace("'", "")
        doc = " ".join(inspect.getdoc(fn).split())
        HOOKS[fn.__name__] = HookSpec(fn.__name__, kind, per_request, limit, signature, doc)
        return fn
    return register


# ---- page hooks ----------------------------------------------------------------------------
@_hook("once", per_request=False, limit="120 s")
def setup() -> None:
    """Called once, when the extension is first enabled (at start, or by an admin in the
    Extensions tab), after the settings file's `<name>-<key>` values are put into `params`.
    Runs under a longer time limit (setup may download or load things)."""


@_hook("page", per_request=False, limit="none (runs while the server starts)")
def ui() -> None:
    """Called while the page is built, inside the Extensions tab (or in a tab of its own when
    `params["is_tab"]` is true), to create Gradio components and their events. Only
    extensions enabled at start get their controls: one enabled later works without them
    until a restart, and the Extensions tab says so. Event handlers made here that change
    `params` change only the visitor's own copy (see docs/extensions.md, "Per user")."""


@_hook("page", per_request=False)
def custom_css() -> str:
    """Returns CSS added to the page's CSS. Read once at start."""


@_hook("page", per_request=False)
def custom_js() -> str:
    """Returns JavaScript added to the page. Read once at start."""


# ---- per-request hooks, in the order they are called ---------------------------------------
@_hook("chain")
def state_modifier(state: dict) -> dict:
    """Called first for every chat reply and every Default/Notebook generation, with the
    request's `state` (the sampler settings under their preset names, plus `mode`, `name1`,
    `name2`, `context`, `history`, ...). The sampler values, `mode`, `name2` and `context`
    of the returned dict are used for this request (checked against the server's limits)."""


@_hook("chain")
def history_modifier(history: dict) -> dict:
    """Chat only: called once per reply with the conversation as
    `{"internal": [[user, reply], ...], "visible": [[user, reply], ...]}`, the message being
    answered included as the last row. The returned `internal` rows are what the prompt is
    built from; the stored chat is not changed."""


@_hook("chain")
def chat_input_modifier(text: str, visible_text: str, state: dict) -> tuple:
    """Chat only: called when a message is sent, before it is stored. Returns
    `(text, visible_text)`: `text` is what the model reads, `visible_text` what the chat
    shows and stores."""


@_hook("chain")
def input_modifier(string: str, state: dict, is_chat: bool = False) -> str:
    """In chat, called after chat_input_modifier on the text the model reads (is_chat=True);
    in the Default and Notebook tabs on the whole prompt (is_chat=False). Returns the new
    text. The one-argument form `input_modifier(string)` also works."""


@_hook("chain")
def bot_prefix_modifier(string: str, state: dict) -> str:
    """Chat and chat-instruct modes only, for a new reply (not continue): receives "" and
    returns text the prompt ends with, so the model continues after it. The prefix is not
    shown in the reply."""


@_hook("first")
def custom_generate_chat_prompt(user_input: str, state: dict, **kwargs) -> str:
    """Chat only: replaces how the prompt is built. kwargs: `_continue`, `impersonate`,
    `history` (the TGW history without the row being answered, or with it when continuing).
    Returns the whole prompt text. `from modules import chat;
    chat.generate_chat_prompt(user_input, state, **kwargs)` gives the default prompt to
    start from."""


@_hook("first")
def custom_tokenized_length(prompt: str) -> int:
    """Returns the length of `prompt` in tokens, used when the oldest turns of a chat are
    left out to fit the context (pairs with tokenizer_modifier)."""


@_hook("chain")
def tokenizer_modifier(state: dict, prompt: str, input_ids, input_embeds) -> tuple:
    """Called with the prompt's tokens just before they are submitted (every backend):
    `input_ids` is a torch LongTensor of shape [1, n] (a list when torch is missing),
    `input_embeds` is None. Returns `(prompt, input_ids, input_embeds)`; the returned ids
    are what the model reads. Embeddings cannot be fed here: a non-None `input_embeds` is
    reported and ignored."""


@_hook("chain")
def logits_processor_modifier(processor_list: list, input_ids) -> list:
    """Not applied here, on any backend: the next-token scores are computed and sampled in
    the scheduler's one thread, which serves every user at once, so a Python processor run
    per token there could slow or stop everyone's generation, and llama.cpp samples in its
    native chain (loaders/llama_cpp_sampling.py). An extension that defines it still loads;
    the Extensions tab and the log say this hook is ignored."""


@_hook("first")
def custom_generate_reply(question: str, original_question: str, state: dict, stopping_strings: list,
                          is_chat: bool = False):
    """Replaces the model for this request: a generator yielding the reply so far (each
    item the whole text, as in TGW). Runs after the person's slot is taken; each item must
    come within the time limit. Stop strings are applied to what it yields."""


@_hook("chain")
def output_modifier(string: str, state: dict, is_chat: bool = False) -> str:
    """Called once on the finished reply (chat: is_chat=True, the whole message when
    continuing; Default and Notebook: is_chat=False). The returned text is what is shown
    and, in chat, stored. The one-argument form `output_modifier(string)` also works."""


# ---- the generated table -------------------------------------------------------------------
KIND_WORDS = {"chain": "every extension, in order", "first": "the first extension that has it",
              "page": "when the page is built", "once": "once, when first switched on"}


def hooks_markdown() -> str:
    """The hooks table in docs/extensions.md."""
    lines = ["| Hook | Called | Time limit | What it does |", "|---|---|---|---|"]
    for spec in HOOKS.values():
        lines.append(f"| `{spec.signature}` | {KIND_WORDS[spec.kind]} | {spec.limit} | {spec.doc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(hooks_markdown(), end="")
