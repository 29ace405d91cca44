"""A submitted request followed as updates for the screen, independent of the UI.

modules/front_door.py turns a chat or a completion into a request and follows it here.
Updates are coalesced (at most one every UPDATE_INTERVAL seconds, less often as the reply
grows) so a long reply never floods the browser.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

from modules.events import Finished, Queued, TextDelta

UPDATE_INTERVAL = 0.05
LONG_REPLY_CHARS = 4000       # every this many characters shown adds UPDATE_INTERVAL


@dataclass
class ReplyUpdate:
    text: str                    # the reply so far
    status: str                  # a line for the user: queue place, speed, errors
    finished: Finished | None = None
    notices: list[str] = field(default_factory=list)   # things the user must be told once


class SessionControl:
    """Per-browser handle on the request in flight, so Stop cancels only this user's."""

    def __init__(self):
        self.request = None

    def stop(self) -> bool:
        request = self.request
        if request is not None and request.finished is None:
            request.cancel()
            return True
        return False


def follow_request(request, control: SessionControl | None = None,
                   notices: list[str] | None = None) -> Iterator[ReplyUpdate]:
    """A submitted request's events as coalesced ReplyUpdates (text = the reply so far).
    `notices` go out with the first update. Cancels the request if the caller stops
    iterating early (Stop elsewhere, or the browser went away)."""
    if control is not None:
        control.request = request
    notices = list(notices or [])
    text, last_update = "", 0.0
    try:
        for event in request.events():
            if isinstance(event, Queued):
                yield ReplyUpdate(text, queue_line(event.ahead), notices=notices)
                notices = []
            elif isinstance(event, TextDelta):
                text += event.text
                now = time.perf_counter()
                if now - last_update >= update_interval(len(text)):
                    last_update = now
                    yield ReplyUpdate(text, f"Writing... {event.n_tokens} tokens", notices=notices)
                    notices = []
            elif isinstance(event, Finished):
                yield ReplyUpdate(event.text, summary_line(event), event, notices + event.warnings)
    finally:
        # Runs when the browser goes away or the UI stops iterating: free the slot.
        request.cancel()


def update_interval(shown_chars: int) -> float:
    """Seconds between two screen updates. The browser re-renders the whole message as
    Markdown on each one, so a long reply is updated less often to keep the page smooth."""
    return UPDATE_INTERVAL * (1 + shown_chars / LONG_REPLY_CHARS)


EMPTY_REPLY = ("The model ended its turn at once (0 tokens): its end-of-turn token was the likeliest next "
               "token (the Notebook's Probabilities view shows it). To get text, try the chat or "
               "chat-instruct mode, rephrase the prompt, or tick ban_eos_token in the Parameters tab.")


def summary_line(event: Finished) -> str:
    if event.reason == "error":
        return f"Error: {event.error}"
    if event.reason == "stop" and event.n_tokens == 0:
        return EMPTY_REPLY
    speed = f", {event.tokens_per_second:.1f} tokens/s" if event.tokens_per_second else ""
    ending = {"stop": "", "length": " (stopped at the length limit)",
              "cancelled": " (stopped)"}.get(event.reason, "")
    seed = f", seed {event.seed}" if event.seed is not None else ""
    return f"{event.n_tokens} tokens{speed}{seed}{ending}"


def queue_line(ahead: int) -> str:
    if ahead == 0:
        return "Waiting for a free slot: you are next."
    return f"Waiting: {ahead} request{'s' if ahead > 1 else ''} ahead of you."


def failure_update(message: str) -> ReplyUpdate:
    finished = Finished("error", "", 0, 0, None, 0.0, None, error=message)
    return ReplyUpdate("", f"Error: {message}", finished)
