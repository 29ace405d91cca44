"""Timing one request through the scheduler, the same way in every benchmark."""
from __future__ import annotations

import time
from dataclasses import dataclass

from modules.events import Finished, TextDelta
from modules.params import GenerationParams
from modules.scheduler import Scheduler


@dataclass
class RequestTiming:
    start: float            # submitted
    first: float            # first text a caller could show
    end: float              # the Finished event arrived
    finished: Finished

    @property
    def time_to_first_token(self) -> float:
        return self.first - self.start


def greedy_tokens(n_tokens: int) -> GenerationParams:
    """Greedy, end-of-text banned: every run writes exactly n_tokens."""
    return GenerationParams(do_sample=False, max_new_tokens=n_tokens, ban_eos_token=True)


def time_request(scheduler: Scheduler, prompt: str, params: GenerationParams, owner: str = "") -> RequestTiming:
    start = time.perf_counter()
    request = scheduler.submit(prompt, params, owner=owner)
    first = None
    for event in request.events():
        if isinstance(event, TextDelta) and first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    finished = request.finished
    assert finished.n_tokens == params.max_new_tokens or not params.ban_eos_token, \
        (finished.n_tokens, finished.reason, finished.error)
    return RequestTiming(start, first if first is not None else end, end, finished)
