"""The generation-side hooks at the front door's call points: tokenizer_modifier on the
prompt's tokens, custom_tokenized_length when a chat is trimmed to fit, and
custom_generate_reply in place of the model. The front door (modules/front_door.py)
calls these; they never reach the scheduler or the backend except through it.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from modules.chat_session import ReplyUpdate, SessionControl
from modules.events import Finished
from modules.extension_compat import TOKENIZER, as_input_ids, token_list

EMBEDS_IGNORED = ("An extension's tokenizer_modifier returned input embeddings; this server feeds the model "
                  "token ids only, so they were ignored.")


class LeasedTokenizer:
    """encode/decode for modules.text_generation: the loaded model's tokenizer, leased per
    call (an extension's call may outlive its time limit; it must never keep a lease)."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def _backend(self, backend):
        if backend is None:
            raise RuntimeError("No model is loaded.")
        return backend

    def encode(self, text: str, add_bos: bool) -> list[int]:
        with self.scheduler.leased_backend() as backend:
            return self._backend(backend).tokenize(text, add_bos=add_bos)

    def decode(self, ids: list[int], skip_special: bool) -> str:
        with self.scheduler.leased_backend() as backend:
            data = b"".join(self._backend(backend).token_bytes(token, skip_special) for token in ids)
        return data.decode("utf-8", errors="replace")


@contextmanager
def tokenizer_in_context(scheduler):
    token = TOKENIZER.set(LeasedTokenizer(scheduler))
    try:
        yield
    finally:
        TOKENIZER.reset(token)


def token_counter(hooks, backend, add_bos: bool) -> Callable[[str], int]:
    """How chat trimming counts a prompt: the first extension's custom_tokenized_length,
    else (or when it fails) the backend's tokenizer."""
    def count(text: str) -> int:
        if hooks is not None and hooks.has("custom_tokenized_length"):
            length = hooks.tokenized_length(text)
            if length is not None:
                return length
        return len(backend.tokenize(text, add_bos=add_bos))
    return count


def modified_prompt(hooks, state: dict, text: str, ids: list[int] | None) -> str | list[int]:
    """The prompt after tokenizer_modifier: token ids when an extension has the hook (they
    are then what the model reads), else the text unchanged. `ids`: the text's tokens."""
    if ids is None:
        return text
    _, new_ids, embeds = hooks.tokenizer(state, text, as_input_ids(ids), None)
    if embeds is not None:
        hooks.notices.append(EMBEDS_IGNORED)
    try:
        return token_list(new_ids)
    except (TypeError, ValueError):
        hooks.notices.append("An extension's tokenizer_modifier returned token ids that could not be read; "
                             "the prompt's own tokens were used.")
        return ids


def custom_reply_updates(items: Iterator[str], stops: list[str], control: SessionControl | None,
                         notices: list[str], hooks) -> Iterator[ReplyUpdate]:
    """An extension's replies-so-far as updates, cut at the first stop string. Stop works
    through the control like a model's request."""
    cancel = _Cancel()
    if control is not None:
        control.request = cancel
    started, text, reason = time.perf_counter(), "", "stop"
    try:
        for item in items:
            text, stopped = _cut_at_stop(item, stops)
            if cancel.cancelled:
                reason = "cancelled"
                break
            yield ReplyUpdate(text, "Writing... (an extension writes this reply)", notices=notices + hooks.take_notices())
            notices = []
            if stopped:
                break
    finally:
        cancel.finished = True
    seconds = time.perf_counter() - started
    finished = Finished(reason, text, 0, 0, None, seconds, None)
    yield ReplyUpdate(text, f"Written by an extension in {seconds:.1f} s", finished,
                      notices + hooks.take_notices())


class _Cancel:
    """What SessionControl.stop() needs from a request."""

    def __init__(self):
        self.cancelled = False
        self.finished = None

    def cancel(self) -> None:
        self.cancelled = True


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    cuts = [text.find(stop) for stop in stops if stop and stop in text]
    return (text[:min(cuts)], True) if cuts else (text, False)
