"""The contract every backend fulfils.

A backend holds one loaded model and decodes several sequences step by step. The
scheduler (modules/scheduler.py) owns the model's time and drives it like this:

    seq = backend.open_sequence(prompt_tokens, params)   # queued for prefill
    while running:
        backend.forward(feeds)          # one model pass: pending prefills + one token per
                                        #   sequence in `feeds`; afterwards those are ready
        for seq in ready:
            token = backend.sample(seq) # from the logits of the last forward
            ...                         # the engine decides: finish, or feed it next pass
    backend.close_sequence(seq)

Calls come from the scheduler's single thread only, so a backend needs no locking.
Nothing outside loaders/ imports llama_cpp, transformers' model classes or gptqmodel.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from modules.params import GenerationParams


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message says why in plain words."""


@dataclass
class ModelInfo:
    name: str                      # file or folder name shown to users
    path: str
    loader: str                    # "llama.cpp", "Transformers", "GPTQ"
    n_ctx: int                     # context available to one sequence
    n_ctx_train: int               # what the model was trained with
    max_sequences: int             # sequences that can decode together
    chat_template: str | None      # Jinja2 source from the model's metadata
    bos_token: str = ""
    eos_token: str = ""
    add_bos_default: bool = True
    details: dict = field(default_factory=dict)   # loader-specific facts for the Model tab


class Sequence:
    """One request's decoding state inside a backend. Backends subclass it."""

    def __init__(self, prompt_tokens: list[int], params: GenerationParams):
        self.prompt_tokens = list(prompt_tokens)
        self.params = params
        self.generated: list[int] = []
        self.n_reused = 0          # prompt tokens found in a cache and not read again

    @property
    def n_tokens(self) -> int:
        return len(self.prompt_tokens) + len(self.generated)


class Backend(ABC):
    info: ModelInfo
    vocab_size: int = 0            # token ids run from 0 to vocab_size - 1

    # ---- tokens ----------------------------------------------------------------------
    @abstractmethod
    def tokenize(self, text: str, add_bos: bool, special: bool = True) -> list[int]:
        """Text to token ids; `special` parses markers like <|im_start|> as special tokens."""

    @abstractmethod
    def token_bytes(self, token: int, skip_special: bool) -> bytes:
        """The raw bytes one token adds to the text (may be part of a UTF-8 character)."""

    @abstractmethod
    def is_end_of_generation(self, token: int) -> bool:
        """EOS, EOT or any token the model uses to end its turn."""

    def token_text(self, token: int) -> str:
        """A readable form of one token, for the Tokens view."""
        return self.token_bytes(token, skip_special=False).decode("utf-8", errors="replace")

    # ---- decoding --------------------------------------------------------------------
    @abstractmethod
    def open_sequence(self, prompt_tokens: list[int], params: GenerationParams) -> Sequence:
        """Reserves a slot and a sampler; the prompt is processed by the next forward()."""

    def open_sequence_for(self, owner: str, prompt_tokens: list[int],
                          params: GenerationParams) -> Sequence:
        """open_sequence for a known owner, which the scheduler always uses. A backend that
        keeps caches between requests (llama.cpp) picks the slot holding the longest start
        of the prompt, the owner's own on a tie; the others ignore the owner."""
        return self.open_sequence(prompt_tokens, params)

    @abstractmethod
    def forward(self, feeds: dict[Sequence, int]) -> list[Sequence]:
        """One model pass. Feeds each given sequence its sampled token and processes
        pending prompts. Returns the sequences that now have logits ready to sample."""

    @abstractmethod
    def sample(self, seq: Sequence) -> int:
        """Samples the next token of a ready sequence with its own sampler settings."""

    @abstractmethod
    def close_sequence(self, seq: Sequence) -> None:
        """Frees the sequence's slot. A backend may keep its cache there for a later prompt
        that starts the same way (the next turn of a chat)."""

    def top_candidates(self, seq: Sequence, count: int) -> list[tuple[int, float]]:
        """(token, probability) of the likeliest next tokens under the sequence's sampler
        settings, for the Probabilities view. Backends that cannot tell return []."""
        return []

    def warnings_for(self, params: GenerationParams) -> list[str]:
        """Settings this backend cannot honour, as messages to show the user."""
        return []

    @abstractmethod
    def unload(self) -> None:
        """Frees the model's memory."""
