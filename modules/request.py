"""One generation request: its settings, its own cancel handle and its event stream."""
from __future__ import annotations

import itertools
import queue
import threading
import time
from typing import Iterator

from modules.events import Finished, Queued, TextDelta
from modules.params import GenerationParams
from modules.text_stream import ReplyText

_ids = itertools.count(1)


class Request:
    def __init__(self, prompt: str | list[int], params: GenerationParams, owner: str = "",
                 candidates_wanted: int = 0):
        self.id = next(_ids)
        self.prompt = prompt
        self.params = params
        self.owner = owner                      # who asked: per-user caps and fairness
        self.submitted_at = time.perf_counter()
        self.first_token_at: float | None = None
        self.prompt_tokens: list[int] = []
        self.generated: list[int] = []
        self.reply = ReplyText(params.custom_stopping_strings)
        self.warnings: list[str] = []
        self.seed: int | None = None            # set by the backend's sampler
        # Probabilities view: read the prompt, report the likeliest next tokens, stop.
        self.candidates_wanted = candidates_wanted
        self.candidates: list[tuple[int, float]] | None = None
        # API logprobs: None, or how many alternatives to keep for each generated token;
        # the scheduler appends ((token, bytes, logprob), [alternatives]) per token.
        self.logprobs_wanted: int | None = None
        self.token_logprobs: list = []
        self.finished: Finished | None = None
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._cancelled = threading.Event()
        self._stream_done = False              # the caller has read the Finished event
        self.last_reported_ahead: int | None = None

    # ---- the caller's side ------------------------------------------------------------
    def cancel(self) -> None:
        """Stops this request only; the scheduler ends it before its next token."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def events(self, timeout: float | None = None) -> Iterator[TextDelta | Queued | Finished]:
        """Yields events until (and including) the Finished event."""
        if self._stream_done:
            return
        while True:
            event = self._events.get(timeout=timeout)
            if isinstance(event, Finished):
                self._stream_done = True
                yield event
                return
            yield event

    def result(self) -> Finished:
        """Blocks until the request ends; returns its Finished event."""
        for _ in self.events():
            pass
        return self.finished

    def text(self) -> str:
        return self.result().text

    # ---- the scheduler's side -----------------------------------------------------------
    def emit_queued(self, ahead: int) -> None:
        self._events.put(Queued(ahead))

    def add_token(self, token: int, piece: bytes) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.generated.append(token)
        new_text = self.reply.add(piece)
        if new_text:
            self._events.put(TextDelta(new_text, len(self.generated)))

    def finish(self, reason: str, error: str | None = None) -> None:
        if self.finished is not None:
            return
        tail = self.reply.finish() if reason != "error" else ""
        if tail:
            self._events.put(TextDelta(tail, len(self.generated)))
        now = time.perf_counter()
        ttft = (self.first_token_at - self.submitted_at) if self.first_token_at else None
        tps = None
        if self.first_token_at and len(self.generated) > 1 and now > self.first_token_at:
            tps = (len(self.generated) - 1) / (now - self.first_token_at)
        self.finished = Finished(
            reason=reason, text=self.reply.shown, n_tokens=len(self.generated),
            prompt_tokens=len(self.prompt_tokens), time_to_first_token=ttft,
            seconds=now - self.submitted_at, tokens_per_second=tps, error=error,
            seed=self.seed, warnings=list(self.warnings))
        self._events.put(self.finished)
