"""Prompt-cache reuse for the torch backends (Transformers, GPTQ), as the llama.cpp backend
does it with its slots (loaders/llama_cpp_cache.py).

A finished sequence leaves its KV cache (a transformers DynamicCache) here. The next prompt
that starts with the same tokens (the next turn of that chat, a Regenerate, a Continue, an
edit further up) takes the kept cache that shares the longest start with it, cut at the
first token that differs, and the model reads only the tokens after that.

The pool is bounded like llama.cpp's slots: kept caches plus running sequences never number
more than the sequences the model decodes together (--parallel), so kept caches take no more
memory than a full batch would; the least recently used goes first.

A kept cache also holds the scores its prompt ended with, so the same prompt again (a
Regenerate) reads nothing and draws from exactly the scores of the first time: reading a
prompt's last token alone gives scores that differ in the last bits (bf16 especially),
enough to change what the same seed draws.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from loaders.llama_cpp_cache import CacheCounters, common_prefix


@dataclass
class KeptCache:
    tokens: list[int]          # the tokens whose keys and values the cache holds, in order
    cache: object              # a transformers DynamicCache
    owner: str
    last_used: int
    prompt_length: int = 0     # the prompt the sequence began with: tokens[:prompt_length]
    prompt_logits: object = None   # the scores after reading it (a tensor), or None


def cache_prefix(cache, length: int, copy: bool):
    """A DynamicCache holding the first `length` positions of `cache` (its own memory when
    `copy`, else views of the same tensors)."""
    from transformers import DynamicCache

    def part(tensor):
        cut = tensor[:, :, :length]
        return cut.clone() if copy else cut
    return DynamicCache(ddp_cache_data=[(part(layer.keys), part(layer.values)) for layer in cache.layers])


def cache_bytes(cache) -> int:
    return sum(t.nelement() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def can_cut(cache) -> bool:
    """Only plain layers can be cut at any position (sliding-window ones drop old positions)."""
    return all(type(layer).__name__ == "DynamicLayer" for layer in cache.layers)


class PrefixCachePool:
    """Kept caches of finished sequences, and what reusing them saved (for the Model tab)."""

    def __init__(self, enabled: bool, capacity: int):
        self.enabled = enabled
        self.capacity = max(1, capacity)
        self.counters = CacheCounters()
        self._entries: list[KeptCache] = []
        self._clock = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, prompt: list[int], owner: str, running: int):
        """(cache, kept, logits) for a new prompt: the kept cache sharing the longest start
        with it (the same owner's first on a tie, then the most recent), cut to that start;
        (None, 0, None) when none shares a token. At least one prompt token is left to read,
        for fresh scores, unless the kept cache began with this very prompt: then its scores
        come back too and nothing is read. `running`: sequences open besides this one."""
        shared, entry = self._best(prompt, owner)
        if entry is None:
            self._make_room(running + 1)
            self.counters.record(len(prompt), 0, restored=False)
            return None, 0, None
        logits = None
        if entry.prompt_logits is not None and entry.prompt_length == len(prompt) \
                and entry.tokens[:len(prompt)] == prompt:
            shared, logits = len(prompt), entry.prompt_logits
        # The entry itself goes on when the prompt extends all of it, or when it is the same
        # owner's chat changed near its end (Regenerate, an edit): its old tail is not wanted.
        # Otherwise (another chat that shares a start) the start is copied and the entry stays.
        move = shared == len(entry.tokens) or (entry.owner == owner and 2 * shared >= len(entry.tokens))
        if move:
            self._entries.remove(entry)
        cache = cache_prefix(entry.cache, shared, copy=not move)
        self._make_room(running + 1)
        self.counters.record(len(prompt), shared, restored=False)
        return cache, shared, logits

    def keep(self, tokens: list[int], cache, owner: str, running: int, copy: bool,
             prompt_length: int = 0, prompt_logits=None) -> None:
        """Keeps a finished sequence's cache of `tokens`. `copy`: the cache is a view of a
        bigger (batched) one, so it is copied, letting the batch's memory go. prompt_logits:
        the scores after its first prompt_length tokens (kept only if the cache holds them)."""
        if not self.enabled or not tokens or cache is None or not can_cut(cache):
            return
        # A kept cache whose tokens all start the new one is of no further use.
        self._entries = [e for e in self._entries if common_prefix(e.tokens, tokens) < len(e.tokens)]
        stored = cache_prefix(cache, len(tokens), copy=True) if copy else cache
        if prompt_length > len(tokens):
            prompt_logits = None
        self._entries.append(KeptCache(list(tokens), stored, owner, next(self._clock),
                                       prompt_length, prompt_logits))
        self._make_room(running)

    def clear(self) -> None:
        self._entries.clear()

    def kept_bytes(self) -> int:
        return sum(cache_bytes(e.cache) for e in self._entries)

    def _best(self, prompt: list[int], owner: str) -> tuple[int, KeptCache | None]:
        if not self.enabled:
            return 0, None
        limit = len(prompt) - 1
        scored = [(min(common_prefix(e.tokens, prompt), limit), e) for e in self._entries]
        scored = [(n, e) for n, e in scored if n > 0]
        if not scored:
            return 0, None
        return max(scored, key=lambda pair: (pair[0], pair[1].owner == owner, pair[1].last_used))

    def _make_room(self, running: int) -> None:
        """Drops the least recently used kept caches until they and the running sequences
        fit in the capacity."""
        while self._entries and len(self._entries) + running > self.capacity:
            self._entries.remove(min(self._entries, key=lambda e: e.last_used))

    def summary(self) -> str:
        c = self.counters
        if not self.enabled:
            return "off"
        if not c.prompts:
            return "no prompts yet"
        share = 100.0 * c.tokens_reused / max(1, c.prompt_tokens)
        return (f"{c.prompts} prompts, {c.prompt_tokens:,} tokens: {c.tokens_reused:,} reused from kept caches "
                f"({c.slot_hits} hits), {c.tokens_read:,} read ({share:.0f}% not read again); "
                f"{len(self)} kept, {self.kept_bytes() / 2**20:.1f} MiB")
