"""How many prompt tokens one forward pass may read while other sequences are generating.

Every pass gives each generating sequence its next token, and prompts fill the rest of the
batch. On a CPU a prompt token costs about half a generated token's pass (~4 ms on two
cores), so a full 512-token batch of someone's long prompt made everyone else's next token
wait two seconds. Reading prompts in small chunks while others stream keeps their pace; when
nobody is generating, a prompt gets the whole batch.

The chunk is sized from measured times so that a pass with a prompt chunk takes about
STALL_FACTOR times a plain generating pass: a few tokens on a CPU, hundreds on a GPU, where
prompt tokens are nearly free. A fixed size (--prefill-chunk) replaces the measurement.

What a chunk costs is measured on chunks read beside generating sequences, not on whole
batches: llama.cpp reads a chunk of two or more tokens in a micro-batch of its own (one more
pass over the weights), and deep in a long prompt every token attends to all before it, so
a token costs several times more in a small chunk than in a 512-token batch. Where even two
tokens would overrun the bound (a CPU, deep in a long prompt), a pass reads one token, which
rides in the generating sequences' own micro-batch.
"""
from __future__ import annotations

import statistics
from collections import deque

STALL_FACTOR = 2.5         # a pass with a prompt chunk may take about this many plain passes
                           # (a gap between two tokens under 3 plain passes, with a margin)
MIN_CHUNK = 1              # a prompt always moves on
FIRST_GUESS = MIN_CHUNK    # before a chunk's cost was measured
RECENT = 15                # plain passes: medians of this many recent ones, so that a load
                           # spike on a shared machine moves them little
RECENT_CHUNKS = 7          # chunk costs grow as a long prompt gets deeper: fewer, more recent


class PrefillBudget:
    def __init__(self, batch_tokens: int, fixed_chunk: int = 0):
        self.batch_tokens = batch_tokens
        self.fixed_chunk = fixed_chunk
        self._plain: deque[float] = deque(maxlen=RECENT)       # seconds of a pass without prompt
        self._per_token: deque[float] = deque(maxlen=RECENT_CHUNKS)   # seconds a chunk's token adds
        self._batch_token: deque[float] = deque(maxlen=RECENT)  # the same, in passes of prompts alone

    def tokens(self, generating: int) -> int:
        """Prompt tokens allowed in a pass that also feeds `generating` sequences."""
        room = self.batch_tokens - generating
        if generating == 0:
            return room
        if self.fixed_chunk > 0:
            return max(1, min(self.fixed_chunk, room))
        if not self._plain or not (self._per_token or self._batch_token):
            return max(1, min(FIRST_GUESS, room))
        chunk = int((STALL_FACTOR - 1.0) * self.plain_pass / self.per_token)
        return max(1, min(max(chunk, MIN_CHUNK), room))

    def record(self, generating: int, prompt_tokens: int, seconds: float) -> None:
        """Learns from one pass's duration."""
        if prompt_tokens == 0:
            if generating:
                self._plain.append(seconds)
            return
        if not generating:
            self._batch_token.append(max(seconds, 1e-6) / prompt_tokens)
        elif self._plain:
            extra = max(seconds - self.plain_pass, 1e-6)
            if prompt_tokens == 1:
                # A single token rides in the generating micro-batch; two would add a pass
                # over the weights (at most about a plain pass): the cost a 2-token chunk
                # would have per token, so that shallow prompts grow out of single tokens.
                extra = (2 * extra + self.plain_pass) / 2
            self._per_token.append(extra / prompt_tokens)

    @property
    def plain_pass(self) -> float:
        return statistics.median(self._plain)

    @property
    def per_token(self) -> float:
        """Seconds a prompt token adds to a generating pass: measured on chunks once there
        are some, else on whole batches (a first, low guess)."""
        return statistics.median(self._per_token or self._batch_token)

    def describe(self) -> str:
        if self.fixed_chunk > 0:
            return f"{self.fixed_chunk} tokens a pass while others generate (fixed)"
        if not self._plain or not (self._per_token or self._batch_token):
            return "measured while running"
        return (f"{self.tokens(1)} tokens a pass while others generate (a plain pass "
                f"{self.plain_pass * 1000:.1f} ms, a prompt token {self.per_token * 1000:.2f} ms)")
