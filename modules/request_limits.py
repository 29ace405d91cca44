"""Per-user limits checked by the UI before it submits to the scheduler: how many requests one
person may have queued or running at once, and how long one message may be. One person
pressing Generate in five tabs shouldn't push everyone else to the back of the queue.

Usage (in a generation handler):
    limits.check_input(text)                    # raises InputTooLong
    with limits.slot(owner):                    # raises TooManyRequests
        request = scheduler.submit(prompt, params, owner)
        for event in request.events(): ...
Put the `with` inside the generator so the slot is freed when the generator ends or is
closed (Gradio closes it when the browser goes away).
"""
from __future__ import annotations

import threading
from collections import Counter

MAX_ACTIVE_REQUESTS_PER_USER = 3
MAX_INPUT_CHARS = 100_000        # what a person may type or paste in one message


class LimitExceeded(Exception):
    """Its message is written for the person at the keyboard; show it as is."""


class TooManyRequests(LimitExceeded):
    pass


class InputTooLong(LimitExceeded):
    pass


class RequestLimits:
    def __init__(self, max_active_per_user: int = MAX_ACTIVE_REQUESTS_PER_USER,
                 max_input_chars: int = MAX_INPUT_CHARS, who: str = "You already have"):
        self.max_active_per_user = max_active_per_user
        self._who = who
        self.max_input_chars = max_input_chars
        self._lock = threading.Lock()
        self._active: Counter[str] = Counter()

    def check_input(self, text: str) -> None:
        if len(text) > self.max_input_chars:
            raise InputTooLong(f"Your message is {len(text):,} characters long; the limit is "
                               f"{self.max_input_chars:,}. Shorten it or split it up.")

    def slot(self, owner: str) -> Slot:
        """Takes one of the owner's slots now (or raises TooManyRequests); free it with
        release() or by leaving the `with` block."""
        with self._lock:
            if self._active[owner] >= self.max_active_per_user:
                raise TooManyRequests(
                    f"{self._who} {self._active[owner]} requests queued or running "
                    f"(the limit is {self.max_active_per_user}). Wait for one to finish or stop one.")
            self._active[owner] += 1
        return Slot(self, owner)

    def active(self, owner: str) -> int:
        with self._lock:
            return self._active[owner]

    def _release(self, owner: str) -> None:
        with self._lock:
            self._active[owner] -= 1
            if self._active[owner] <= 0:
                del self._active[owner]        # keep the counter from growing with every visitor


class Slot:
    """One taken place in an owner's allowance. Releasing twice is harmless."""

    def __init__(self, limits: RequestLimits, owner: str):
        self._limits = limits
        self.owner = owner
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._limits._release(self.owner)

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
