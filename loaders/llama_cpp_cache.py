"""Prompt-cache bookkeeping for the llama.cpp backend: what each slot's KV cache holds,
which slot a new prompt goes to, and the copies of reclaimed slots kept in host memory.

Reading a prompt costs about 4 ms a token on two CPU cores, so a chat whose whole history
is read again every turn gets slower with every turn. A finished sequence therefore leaves
its cache in its slot; the next prompt that starts with the same tokens (the next turn of
that chat, a Regenerate, a Continue, an edit further down) goes to that slot and reads only
the tokens after the common prefix, as llama.cpp's own server does with `cache_prompt`.

This module decides; the backend does the native calls. Nothing here touches llama.cpp.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

MIN_SAVE_TOKENS = 64       # a shorter cache is read again faster than it is worth keeping
MIN_RESTORE_TOKENS = 32    # restoring a host copy must save at least this much reading


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two lists share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)   # token ids held at positions 0..len-1
    owner: str = ""
    last_used: int = -1
    busy: bool = False


@dataclass
class SavedState:
    """A reclaimed slot's sequence state (llama_state_seq_get_data) and the tokens it holds."""
    tokens: list[int]
    owner: str
    data: bytes


@dataclass
class Plan:
    """Where a new prompt goes and what happens to that slot's cache first."""
    slot: Slot
    keep: int                        # cached tokens kept; reading starts at this position
    save_first: bool = False         # copy the slot's state to host memory before changing it
    restore: SavedState | None = None    # load this host copy into the slot (then keep `keep`)


class HostCache:
    """Sequence states of reclaimed slots in host memory, least recently used dropped first,
    bounded in bytes (--cache-ram)."""

    def __init__(self, capacity_bytes: int):
        self.capacity = max(0, capacity_bytes)
        self._entries: OrderedDict[int, SavedState] = OrderedDict()
        self._keys = itertools.count()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, state: SavedState) -> bool:
        """Keeps a copy; an older copy whose tokens the new one starts with is replaced."""
        if len(state.data) > self.capacity:
            return False
        for key, old in list(self._entries.items()):
            if common_prefix(old.tokens, state.tokens) == len(old.tokens):
                self._drop(key)
        while self.bytes + len(state.data) > self.capacity:
            self._drop(next(iter(self._entries)))
        self._entries[next(self._keys)] = state
        self.bytes += len(state.data)
        return True

    def best(self, prompt: list[int]) -> tuple[int | None, int]:
        """The copy sharing the longest prefix with the prompt: (key, shared tokens)."""
        best_key, best_len = None, 0
        for key, state in self._entries.items():
            shared = common_prefix(state.tokens, prompt)
            if shared > best_len:
                best_key, best_len = key, shared
        return best_key, best_len

    def take(self, key: int) -> SavedState:
        """Removes and returns a copy: it goes back into a slot, which holds it from then on."""
        state = self._entries[key]
        self._drop(key)
        return state

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def _drop(self, key: int) -> None:
        self.bytes -= len(self._entries.pop(key).data)


class SlotTable:
    """The slots of one llama.cpp context and the tokens each one's cache holds."""

    def __init__(self, n_slots: int, reuse: bool, host_bytes: int):
        self.slots = [Slot(i) for i in range(n_slots)]
        self.reuse = reuse
        self.host = HostCache(host_bytes if reuse else 0)
        self._clock = itertools.count()

    def free_slots(self) -> list[Slot]:
        return [s for s in self.slots if not s.busy]

    def plan(self, prompt: list[int], owner: str) -> Plan:
        """Picks the free slot for a prompt (the caller has checked one is free).

        The free slot sharing the longest prefix with the prompt wins (the same owner's first
        on a tie), provided that prefix is at least half of what the slot holds or the slot is
        the same owner's (their own chat, edited further down). Otherwise a host copy with a
        longer prefix is restored, or the least recently used slot (an empty one first) is
        reclaimed. At least one prompt token is always read, for fresh logits."""
        free = self.free_slots()
        if not self.reuse:
            return Plan(min(free, key=self.busy_runs), keep=0)
        limit = len(prompt) - 1
        scored = [(min(common_prefix(s.tokens, prompt), limit), s) for s in free]
        fitting = [(n, s) for n, s in scored
                   if n > 0 and (2 * n >= len(s.tokens) or s.owner == owner)]
        chosen, shared = None, 0
        if fitting:
            shared, chosen = max(fitting, key=lambda p: (p[0], p[1].owner == owner, -p[1].last_used))
        host_key, host_shared = self.host.best(prompt)
        host_shared = min(host_shared, limit)
        if host_key is not None and host_shared >= max(shared + MIN_RESTORE_TOKENS, MIN_RESTORE_TOKENS):
            target = self._reclaimable(free)
            return Plan(target, keep=host_shared, save_first=self._worth_saving(target, 0),
                        restore=self.host.take(host_key))
        if chosen is None:
            chosen = self._reclaimable(free)
            shared = min(common_prefix(chosen.tokens, prompt), limit)
        return Plan(chosen, keep=shared, save_first=self._worth_saving(chosen, shared))

    def _reclaimable(self, free: list[Slot]) -> Slot:
        """An empty slot first, else the least recently used; among those, one that keeps the
        busy slots in the fewest runs of adjacent ids: llama.cpp decodes each run of
        consecutive sequence ids as a pass of its own over the weights."""
        empty = [s for s in free if not s.tokens]
        return min(empty or free, key=lambda s: (self.busy_runs(s), s.last_used))

    def busy_runs(self, extra: Slot | None = None) -> int:
        """Runs of adjacent busy slot ids (with `extra` counted as busy)."""
        busy = [s.busy or s is extra for s in self.slots]
        return sum(1 for i, b in enumerate(busy) if b and (i == 0 or not busy[i - 1]))

    def _worth_saving(self, slot: Slot, keep: int) -> bool:
        """Saves a slot whose cache is mostly about to go (another chat, not the next turn)."""
        return (self.host.capacity > 0 and len(slot.tokens) >= MIN_SAVE_TOKENS
                and 2 * keep < len(slot.tokens))

    def occupy(self, slot: Slot, owner: str) -> None:
        slot.busy, slot.owner, slot.last_used = True, owner, next(self._clock)

    def release(self, slot: Slot, tokens: list[int]) -> None:
        """The sequence ended; its slot keeps the cache of `tokens` (nothing without reuse)."""
        slot.busy = False
        slot.tokens = tokens if self.reuse else []
        slot.last_used = next(self._clock)


@dataclass
class CacheCounters:
    """What the prompt cache saved, for the Model tab and the log."""
    prompts: int = 0
    prompt_tokens: int = 0
    tokens_reused: int = 0          # kept in a slot: not read again
    tokens_restored: int = 0        # loaded from a host copy: not read again
    slot_hits: int = 0              # prompts that kept at least one slot token
    restores: int = 0
    saves: int = 0

    def record(self, prompt_tokens: int, kept: int, restored: bool) -> None:
        self.prompts += 1
        self.prompt_tokens += prompt_tokens
        if restored:
            self.restores += 1
            self.tokens_restored += kept
        elif kept:
            self.slot_hits += 1
            self.tokens_reused += kept

    @property
    def tokens_read(self) -> int:
        return self.prompt_tokens - self.tokens_reused - self.tokens_restored

    def summary(self) -> str:
        if not self.prompts:
            return "no prompts yet"
        share = 100.0 * (self.tokens_reused + self.tokens_restored) / max(1, self.prompt_tokens)
        return (f"{self.prompts} prompts, {self.prompt_tokens:,} tokens: {self.tokens_reused:,} kept in "
                f"slots ({self.slot_hits} hits), {self.tokens_restored:,} restored from host memory "
                f"({self.restores} restores), {self.tokens_read:,} read ({share:.0f}% not read again)")
