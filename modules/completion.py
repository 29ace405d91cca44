"""Raw completion for the Notebook and Default tabs, independent of the UI.

No chat template: the text is the prompt, and the model continues it. The tabs show what
`stream_completion` yields; the Tokens and Probabilities views read `token_view` and
`next_token_probabilities`. Tests call these directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from modules.chat_session import ReplyUpdate, SessionControl, failure_update, follow_request
from modules.params import GenerationParams
from modules.scheduler import Scheduler

__all__ = ["ReplyUpdate", "SessionControl", "stream_completion", "token_view",
           "next_token_probabilities", "Candidate", "CompletionError"]

NO_MODEL = "No model is loaded. Load one in the Model tab."


class CompletionError(RuntimeError):
    """Something the user must be told, in plain words (no model, prompt too long...)."""


@dataclass
class Candidate:
    token: int
    text: str             # how the token reads, for the chart label
    probability: float


def stream_completion(
    scheduler: Scheduler,
    prompt_text: str,
    params: GenerationParams,
    owner: str = "",
    control: SessionControl | None = None,
) -> Iterator[ReplyUpdate]:
    """Continues `prompt_text`; each update's text is the continuation so far (without
    the prompt). At most one update per UPDATE_INTERVAL while writing, then a final one
    with `finished` set and a summary line (tokens, tokens/s, or the error)."""
    if scheduler.backend is None:
        yield failure_update(NO_MODEL)
        return
    request = scheduler.submit(prompt_text or "", params, owner=owner)
    yield from follow_request(request, control)


def token_view(scheduler: Scheduler, text: str, params: GenerationParams) -> list[tuple[int, str]]:
    """(id, text) of each token the model reads for `text`, exactly as a generation
    would tokenize it (beginning-of-text token and special markers included)."""
    backend = scheduler.backend
    if backend is None:
        raise CompletionError(NO_MODEL)
    tokens = backend.tokenize(text or "", add_bos=params.add_bos_token)
    return [(token, backend.token_text(token)) for token in tokens]


def next_token_probabilities(
    scheduler: Scheduler, text: str, params: GenerationParams, count: int = 10, *, owner: str = "",
) -> list[Candidate]:
    """The likeliest next tokens after `text` under these sampler settings, most likely
    first. Goes through the scheduler like any request, so it never races a generation
    for the model; it occupies a slot only while the text is read."""
    backend = scheduler.backend
    if backend is None:
        raise CompletionError(NO_MODEL)
    request = scheduler.submit(text or "", params, owner=owner, candidates=count)
    try:
        finished = request.result()
    finally:
        request.cancel()
    if finished.reason == "error":
        raise CompletionError(finished.error)
    return [Candidate(token, backend.token_text(token), probability)
            for token, probability in (request.candidates or [])]
