"""How many prompt tokens one forward pass may read while other sequences are generating.

Every pass gives each generating sequence its next token, and prompts fill the rest of the
batch. On a CPU a prompt token costs about half a generated token's pass (~4 ms on two
cores), so a full 512-token batch of someone's long prompt made everyone else's next token
wait two seconds. Reading prompts in small chunks while others stream keeps their pace; when
nobody is generating, a prompt gets the whole batch.

The chunk is sized from measured times so that a pass with a prompt chunk takes about
STALL_FACTOR times a plain generating pass: a few tokens on a CPU, hundreds on a GPU, where
prompt tokens are nearly free. A fixed size (--prefill-chunk) replaces the measurement.
"""
from __future__ import annotations

import statistics
from collections import deque

STALL_FACTOR = 2.0         # a pass with a prompt chunk may take about this many plain passes
MIN_CHUNK = 4              # a prompt always moves on (and its cost stays measurable)
FIRST_GUESS = MIN_CHUNK    # before a prompt token's cost was measured
RECENT = 15                # estimates are medians of this many recent passes: a load spike
                           # on a shared machine moves them little


class PrefillBudget:
    def __init__(self, batch_tokens: int, fixed_chunk: int = 0):
        self.batch_tokens = batch_tokens
        self.fixed_chunk = fixed_chunk
        self._plain: deque[float] = deque(maxlen=RECENT)       # seconds of a pass without prompt
        self._per_token: deque[float] = deque(maxlen=RECENT)   # seconds a prompt token adds

    def tokens(self, generating: int) -> int:
        """Prompt tokens allowed in a pass that also feeds `generating` sequences."""
        room = self.batch_tokens - generating
        if generating == 0:
            return room
        if self.fixed_chunk > 0:
            return max(1, min(self.fixed_chunk, room))
        if not self._plain or not self._per_token:
            return max(1, min(FIRST_GUESS, room))
        chunk = int((STALL_FACTOR - 1.0) * self.plain_pass / self.per_token)
        return max(1, min(max(chunk, MIN_CHUNK), room))

    def record(self, generating: int, prompt_tokens: int, seconds: float) -> None:
        """Learns from one pass's duration."""
        if prompt_tokens == 0:
            if generating:
                self._plain.append(seconds)
            return
        plain = self.plain_pass if generating and self._plain else 0.0
        if prompt_tokens >= MIN_CHUNK:      # smaller chunks are mostly the pass's fixed cost
            self._per_token.append(max(seconds - plain, 1e-6) / prompt_tokens)

    @property
    def plain_pass(self) -> float:
        return statistics.median(self._plain)

    @property
    def per_token(self) -> float:
        return statistics.median(self._per_token)

    def describe(self) -> str:
        if self.fixed_chunk > 0:
            return f"{self.fixed_chunk} tokens a pass while others generate (fixed)"
        if not self._plain or not self._per_token:
            return "measured while running"
        return (f"{self.tokens(1)} tokens a pass while others generate (a plain pass "
                f"{self.plain_pass * 1000:.1f} ms, a prompt token {self.per_token * 1000:.2f} ms)")
