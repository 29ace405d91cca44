"""What a generation request streams back to its caller."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TextDelta:
    text: str           # new text, safe to show (never half a character or stop string)
    n_tokens: int       # tokens generated so far


@dataclass
class Queued:
    ahead: int          # requests waiting before this one


@dataclass
class Finished:
    reason: str         # "stop", "length", "cancelled" or "error"
    text: str           # the whole reply
    n_tokens: int
    prompt_tokens: int
    time_to_first_token: float | None   # seconds from submission to the first token
    seconds: float                      # submission to finish
    tokens_per_second: float | None     # generated tokens over generation time
    error: str | None = None
    seed: int | None = None             # the seed actually used, to reproduce the reply
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reason in ("stop", "length")
