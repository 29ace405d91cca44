"""Prompt-cache bookkeeping for the llama.cpp backend: what each slot's KV cache holds,
which slot a new prompt goes to, and the copies of reclaimed slots kept in host memory.

Reading a prompt costs about 4 ms a token on two CPU cores, so a chat whose whole history
is read again every turn gets slower with every turn. A finished sequence therefore leaves
its cache in its slot; the next prompt that starts with the same tokens (the next turn of
that chat, a Regenerate, a Continue, an edit further down) goes to that slot and reads only
the tokens after the common prefix, as llama.cpp's own server does with `cache_prompt`.

A prefix is shared across owners too (one character or system prompt for many people): when
another slot, busy or free, holds a longer start of the prompt, its cache is copied into the
slot the prompt gets (llama_memory_seq_cp), so the second person reads only their own tokens
and the first keeps their chat; a host copy of another owner's chat is restored without
being taken from them. docs/prompt_cache.md says why a copy and not a shared stream.

This module decides; the backend does the native calls. Nothing here touches llama.cpp.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

MIN_SAVE_TOKENS = 64       # a shorter cache is read again faster than it is worth keeping
MIN_RESTORE_TOKENS = 32    # restoring a host copy must save at least this much reading
MIN_COPY_TOKENS = 32       # copying another slot's cache must save at least this much reading


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
    # Source or target of a copy llama.cpp makes only at the next decode: until then its
    # state may be neither saved (it is stale) nor overwritten (the copy would take that).
    copy_pending: bool = False


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
    copy_from: Slot | None = None        # copy this other slot's cache into the slot (then keep `keep`)


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

    def get(self, key: int) -> SavedState:
        return self._entries[key]

    def peek(self, key: int) -> SavedState:
        """Returns a copy and keeps it (as the most recently used): another owner restores
        the prefix they share with it, and its owner can still restore the whole chat."""
        self._entries.move_to_end(key)
        return self._entries[key]

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

        In order, each later way taken only when it keeps more of the prompt: a free slot
        that holds the start of the prompt and nothing of another chat beyond it (the same
        owner's first); a copy of a longer start that another slot holds, busy or free, into
        a reclaimed slot, so that slot's owner keeps their chat (at least MIN_COPY_TOKENS
        more); failing those, a free slot whose cache is at least half the prompt's start,
        cut back (another owner's tail is lost: the only free slot is theirs); a host copy
        (at least MIN_RESTORE_TOKENS more). Otherwise the least recently used slot (an empty
        one first) is reclaimed. At least one prompt token is always read, for fresh logits."""
        free = self.free_slots()
        if not self.reuse:
            return Plan(min(free, key=self.busy_runs), keep=0)
        limit = len(prompt) - 1
        scored = [(min(common_prefix(s.tokens, prompt), limit), s) for s in free]
        intact = [(n, s) for n, s in scored if n > 0 and (s.owner == owner or n == len(s.tokens))]
        best = self._best(intact, owner)
        copy = self._copy_plan(prompt, limit, owner, free)
        if copy is not None and copy.keep >= (best.keep if best else 0) + MIN_COPY_TOKENS:
            best = copy
        if best is None:
            best = self._best([(n, s) for n, s in scored if n > 0 and 2 * n >= len(s.tokens)], owner)
        host_key, restore = self._restore_plan(prompt, limit, free)
        if restore is not None and restore.keep >= (best.keep if best else 0) + MIN_RESTORE_TOKENS:
            best = restore
            # The owner's own chat comes back: the slot holds it from now on. Another owner
            # shares its start: the copy stays for its owner.
            self.host.take(host_key) if restore.restore.owner == owner else self.host.peek(host_key)
        if best is None:
            chosen = self._reclaimable(free)
            best = Plan(chosen, keep=min(common_prefix(chosen.tokens, prompt), limit))
        if best.restore is None and best.copy_from is None:
            best.save_first = self._worth_saving(best.slot, best.keep)
        return best

    @staticmethod
    def _best(scored: list[tuple[int, Slot]], owner: str) -> Plan | None:
        """The slot keeping the most tokens (the same owner's, then the least recent, on a tie)."""
        if not scored:
            return None
        shared, slot = max(scored, key=lambda p: (p[0], p[1].owner == owner, -p[1].last_used))
        return Plan(slot, keep=shared)

    def _copy_plan(self, prompt: list[int], limit: int, owner: str, free: list[Slot]) -> Plan | None:
        """The longest start of the prompt any slot holds, copied into a reclaimed free slot."""
        sources = [(min(common_prefix(s.tokens, prompt), limit), s) for s in self.slots]
        shared, source = max(sources, key=lambda p: (p[0], p[1].owner == owner, p[1].last_used))
        targets = [s for s in free if s is not source and not s.copy_pending]
        if shared < MIN_COPY_TOKENS or not targets:
            return None
        target = self._reclaimable(targets)
        return Plan(target, keep=shared, save_first=self._worth_saving(target, 0), copy_from=source)

    def _restore_plan(self, prompt: list[int], limit: int, free: list[Slot]) -> tuple[int | None, Plan | None]:
        """The host copy sharing the longest start with the prompt, restored into a reclaimed
        slot: (its key, the plan)."""
        key, shared = self.host.best(prompt)
        targets = [s for s in free if not s.copy_pending]
        if key is None or not targets:
            return None, None
        target = self._reclaimable(targets)
        return key, Plan(target, keep=min(shared, limit), save_first=self._worth_saving(target, 0),
                         restore=self.host.get(key))

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
                and 2 * keep < len(slot.tokens) and not slot.copy_pending)

    def copy_queued(self, source: Slot, target: Slot) -> None:
        source.copy_pending = target.copy_pending = True

    def copies_applied(self) -> None:
        """llama_decode is about to run the queued copies (before its batch)."""
        for slot in self.slots:
            slot.copy_pending = False

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
    tokens_copied: int = 0          # copied from another slot (a shared prefix): not read again
    slot_hits: int = 0              # prompts that kept at least one slot token
    restores: int = 0
    copies: int = 0
    saves: int = 0

    def record(self, prompt_tokens: int, kept: int, restored: bool, copied: bool = False) -> None:
        self.prompts += 1
        self.prompt_tokens += prompt_tokens
        if restored:
            self.restores += 1
            self.tokens_restored += kept
        elif copied:
            self.copies += 1
            self.tokens_copied += kept
        elif kept:
            self.slot_hits += 1
            self.tokens_reused += kept

    @property
    def tokens_read(self) -> int:
        return self.prompt_tokens - self.tokens_reused - self.tokens_restored - self.tokens_copied

    def summary(self) -> str:
        if not self.prompts:
            return "no prompts yet"
        share = 100.0 * (self.prompt_tokens - self.tokens_read) / max(1, self.prompt_tokens)
        return (f"{self.prompts} prompts, {self.prompt_tokens:,} tokens: {self.tokens_reused:,} kept in "
                f"slots ({self.slot_hits} hits), {self.tokens_copied:,} copied from other slots "
                f"({self.copies} copies), {self.tokens_restored:,} restored from host memory "
                f"({self.restores} restores), {self.tokens_read:,} read ({share:.0f}% not read again)")
