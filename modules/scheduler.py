"""The scheduler owns the model's time.

Every request, from any tab or the API, is submitted here. One thread drives the loaded
backend: it admits waiting requests as slots free up, runs one forward pass for all
active sequences together, samples each sequence with its own settings, and streams
the text to each request's own queue. A request's cancel, error or long reply touches
no other request.
"""
from __future__ import annotations

import itertools
import logging
import math
import threading
import traceback
from collections import deque
from contextlib import contextmanager

from loaders.base import Backend, Sequence
from modules.backend_lease import BackendLease
from modules.params import GenerationParams
from modules.request import Request

log = logging.getLogger(__name__)
LOG_ZERO = -9999.0          # the log-probability reported for a token the sampler had cut away


class Scheduler:
    def __init__(self, backend: Backend | None = None):
        self._backend = backend
        self._waiting: deque[Request] = deque()
        self._active: dict[Sequence, Request] = {}
        self._feeds: dict[Sequence, int] = {}
        self._admissions = itertools.count()
        self._last_admitted: dict[str, int] = {}     # owner -> when last given a slot
        self._wake = threading.Condition()
        self._model_lock = threading.RLock()   # held for a step, and to swap the model
        self.lease = BackendLease()            # tokenisers on other threads vs. unloading
        self.on_finished = None                # called with (request, ModelInfo) as a request ends (metrics)
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    # ---- callers ----------------------------------------------------------------------
    def submit(self, prompt: str | list[int], params: GenerationParams, owner: str = "",
               *, candidates: int = 0, logprobs: int | None = None) -> Request:
        """With candidates > 0 the request generates nothing: it ends once the prompt is
        read, with request.candidates = the likeliest next (token, probability) pairs.
        With logprobs (0 or more alternatives) each generated token's log-probability is
        kept in request.token_logprobs (the API's logprobs)."""
        request = Request(prompt, params, owner, candidates_wanted=candidates)
        request.logprobs_wanted = logprobs
        with self._wake:
            self._waiting.append(request)
            self._wake.notify()
        return request

    def wake(self) -> None:
        """Called after a cancel so a waiting request leaves the queue at once."""
        with self._wake:
            self._wake.notify()

    @property
    def backend(self) -> Backend | None:
        return self._backend

    def queue_length(self) -> int:
        return len(self._waiting)

    @contextmanager
    def leased_backend(self):
        """The backend, kept alive until the block ends: for work on other threads
        (tokenising) that must not race an unload. None when no model is loaded."""
        with self.lease.shared():
            yield self._backend

    def swap_backend(self, backend: Backend | None, reason: str) -> Backend | None:
        """Ends every request on the current model with `reason` and installs another.
        Returns the old backend so the caller can unload it: no leased_backend() block
        can still be using it, and none will get it again."""
        with self.lease.exclusive(), self._model_lock:
            for request in list(self._active.values()):
                request.finish("error", reason)
            self._drop_all_sequences()
            old, self._backend = self._backend, backend
        self.wake()
        return old

    # ---- the loop ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._active and not self._waiting:
                    self._wake.wait()
            try:
                with self._model_lock:
                    self._step()
            except Exception:     # a bug here must not kill the loop for everyone
                log.exception("scheduler step failed")
                with self._model_lock:
                    for request in list(self._active.values()):
                        request.finish("error", "Internal error during generation; see the server log.")
                    self._drop_all_sequences()

    def _step(self) -> None:
        self._drop_cancelled()
        self._admit()
        if not self._active:
            return
        backend = self._backend
        feeds, self._feeds = self._feeds, {}
        try:
            ready = backend.forward(feeds)
        except Exception as exc:
            log.error("forward pass failed: %s", exc)
            for request in list(self._active.values()):
                request.finish("error", f"The model failed during generation: {exc}")
            self._drop_all_sequences()
            return
        for seq in ready:
            request = self._active.get(seq)
            if request is not None:
                self._advance(backend, seq, request)

    def _advance(self, backend: Backend, seq: Sequence, request: Request) -> None:
        """Samples one token for a sequence and decides whether it goes on."""
        if request.cancelled:
            return self._end(seq, request, "cancelled")
        if request.candidates_wanted:        # read here, between passes: no race
            try:
                request.candidates = backend.top_candidates(seq, request.candidates_wanted)
            except Exception as exc:
                return self._end(seq, request, "error", f"Could not read the probabilities: {exc}")
            return self._end(seq, request, "stop")
        try:
            token = backend.sample(seq)
            if backend.is_end_of_generation(token) and not request.params.ban_eos_token:
                return self._end(seq, request, "stop")
            seq.generated.append(token)
            if request.logprobs_wanted is not None:
                self._record_logprobs(backend, seq, request, token)
            request.add_token(token, backend.token_bytes(token, request.params.skip_special_tokens))
        except Exception as exc:
            log.error("request %s failed: %s\n%s", request.id, exc, traceback.format_exc())
            return self._end(seq, request, "error", f"Generation failed: {exc}")
        if request.reply.stopped_by is not None:
            self._end(seq, request, "stop")
        elif len(request.generated) >= request.params.max_new_tokens:
            self._end(seq, request, "length")
        elif seq.n_tokens >= backend.info.n_ctx:
            request.warnings.append("The reply reached the end of the context window.")
            self._end(seq, request, "length")
        else:
            self._feeds[seq] = token

    @staticmethod
    def _record_logprobs(backend: Backend, seq: Sequence, request: Request, token: int) -> None:
        """The sampled token's log-probability and the likeliest alternatives, from the same
        sampler chain as the Probabilities view. Only for requests that ask: it costs a pass
        over the vocabulary per token."""
        ranked = backend.top_candidates(seq, max(request.logprobs_wanted, 32))
        probability = next((p for t, p in ranked if t == token), None)
        if probability is None:         # drawn from further down: rank the whole vocabulary
            probability = next((p for t, p in backend.top_candidates(seq, 1 << 30) if t == token), 0.0)
        skip = request.params.skip_special_tokens

        def entry(candidate: int, probability: float):
            return (candidate, backend.token_bytes(candidate, skip),
                    math.log(probability) if probability > 0 else LOG_ZERO)
        chosen = entry(token, probability)
        request.token_logprobs.append((chosen, [entry(t, p) for t, p in ranked[:request.logprobs_wanted]]))

    def _admit(self) -> None:
        if not self._waiting:          # the common case between tokens: nothing to do
            return
        backend = self._backend
        with self._wake:
            waiting = list(self._waiting)
            self._waiting.clear()
        if backend is None:
            for request in waiting:
                request.finish("error", "No model is loaded. Load one in the Model tab.")
            return
        for request in [r for r in waiting if r.cancelled]:
            waiting.remove(request)
            request.finish("cancelled")
        # Fair share: a free slot goes to the waiting request whose owner has the fewest
        # requests running, then to the owner served least recently (round robin), so one
        # person's burst never holds everyone else back.
        while waiting and len(self._active) < backend.info.max_sequences:
            request = min(waiting, key=self._fair_order)
            waiting.remove(request)
            self._last_admitted[request.owner] = next(self._admissions)
            self._open(backend, request)
        with self._wake:
            self._waiting.extendleft(reversed(sorted(waiting, key=self._fair_order)))
        self._report_positions()

    def _fair_order(self, request: Request) -> tuple[int, int, int]:
        running = sum(1 for r in self._active.values() if r.owner == request.owner)
        return running, self._last_admitted.get(request.owner, -1), request.id

    def _open(self, backend: Backend, request: Request) -> None:
        try:
            prompt = request.prompt
            tokens = (backend.tokenize(prompt, add_bos=request.params.add_bos_token)
                      if isinstance(prompt, str) else list(prompt))
            request.prompt_tokens = tokens
            if log.isEnabledFor(logging.DEBUG):       # --verbose: show what the model reads
                log.debug("request %s from %r, %d prompt tokens:\n%s", request.id, request.owner,
                          len(tokens), prompt if isinstance(prompt, str) else tokens)
            if not tokens:
                raise ValueError("The prompt is empty.")
            if len(tokens) >= backend.info.n_ctx:
                raise ValueError(
                    f"The prompt is {len(tokens)} tokens long but the context holds "
                    f"{backend.info.n_ctx}. Shorten it or load the model with a larger --ctx-size.")
            request.warnings.extend(backend.warnings_for(request.params))
            seq = backend.open_sequence_for(request.owner, tokens, request.params)
            sampler = getattr(seq, "sampler", None)
            request.seed = getattr(sampler, "seed", None)
        except Exception as exc:
            request.finish("error", str(exc))
            return
        self._active[seq] = request

    def _report_positions(self) -> None:
        """Tells each waiting request how many are ahead of it, when that changed."""
        with self._wake:
            for ahead, request in enumerate(self._waiting):
                if request.last_reported_ahead != ahead:
                    request.last_reported_ahead = ahead
                    request.emit_queued(ahead)

    def _drop_cancelled(self) -> None:
        for seq, request in list(self._active.items()):
            if request.cancelled:
                self._end(seq, request, "cancelled")
        if not self._waiting:
            return
        with self._wake:
            cancelled = [r for r in self._waiting if r.cancelled]
            for request in cancelled:
                self._waiting.remove(request)
        for request in cancelled:
            request.finish("cancelled")

    def _end(self, seq: Sequence, request: Request, reason: str, error: str | None = None) -> None:
        self._active.pop(seq, None)
        self._feeds.pop(seq, None)
        try:
            self._backend.close_sequence(seq)
        finally:
            request.finish(reason, error)
            self._report_finished(request)

    def _report_finished(self, request: Request) -> None:
        if self.on_finished is None:
            return
        try:
            self.on_finished(request, self._backend.info if self._backend else None)
        except Exception:       # metrics must never end a generation
            log.exception("on_finished failed")

    def _drop_all_sequences(self) -> None:
        for seq in list(self._active):
            try:
                self._backend.close_sequence(seq)
            except Exception:
                log.exception("closing a sequence failed")
        self._active.clear()
        self._feeds.clear()
