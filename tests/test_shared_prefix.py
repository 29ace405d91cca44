"""A prefix shared across people (one character for many users) is read once, on the real
default model: the second person's prompt reads only their own tokens, whether the first
person's slot is free, still generating, or saved to host memory, the first person keeps
their chat, and the greedy reply is the one the model gives with the cache off.
The slot planner's choices are checked on their own at the end.
"""
from __future__ import annotations

import pytest

from loaders.llama_cpp_cache import MIN_COPY_TOKENS, SavedState, SlotTable
from modules.chat_prompt import build_chat_prompt
from modules.params import GenerationParams

TRAITS = ["patient", "curious", "dry-humoured", "precise", "kind", "stubborn", "well-read", "calm"]
CHARACTER = "You are Captain Mira Vale, keeper of the lighthouse at Gull Point. " + " ".join(
    f"Fact {i}: Mira is {TRAITS[i % len(TRAITS)]} and remembers the storm of year {1890 + i}, "
    f"when ship number {i * 7} came in." for i in range(34))
GREEDY = GenerationParams(do_sample=False, max_new_tokens=12)
# Long enough that her own part of the chat is worth restoring (MIN_RESTORE_TOKENS)
ANN_MESSAGE = ("Good evening, captain. I walked up from the harbour tonight to ask how the light "
               "is holding up in this wind, and whether the new lens arrived on the supply boat.")


def _load(**settings):
    from loaders.llama_cpp_loader import load
    from loaders.settings import LoadSettings
    from tests.conftest import DEFAULT_GGUF
    return load(str(DEFAULT_GGUF), LoadSettings(ctx_size=1536, parallel=2, **settings), lambda f, m: None)


@pytest.fixture(scope="module")
def uncached():
    backend = _load(cache_reuse=False)
    yield backend
    backend.unload()


@pytest.fixture
def cached():
    # A fixed prompt chunk: chunks sized from measured pass times would batch a prompt read
    # beside a generating reply differently from run to run, and llama.cpp's logits depend
    # on the batching (docs/prompt_cache.md, "Identical replies").
    backend = _load(cache_reuse=True, cache_ram=256, prefill_chunk=512)
    yield backend
    backend.unload()


def prompt(backend, message: str, history=(), system: str = CHARACTER) -> list[int]:
    messages = [{"role": "system", "content": system}]
    for user, assistant in history:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    messages.append({"role": "user", "content": message})
    info = backend.info
    built = build_chat_prompt(messages, info.chat_template, lambda text: 0, info.n_ctx,
                              bos_token=info.bos_token, eos_token=info.eos_token)
    return backend.tokenize(built.text, add_bos=info.add_bos_default)


def step(backend, feeds: dict) -> dict:
    """One pass as the scheduler drives it: each sequence with logits samples its next token."""
    next_feeds = {}
    for seq in backend.forward(feeds):
        token = backend.sample(seq)
        seq.generated.append(token)
        if not backend.is_end_of_generation(token) and len(seq.generated) < seq.params.max_new_tokens:
            next_feeds[seq] = token
    return next_feeds


def run(backend, sequences, feeds=None) -> None:
    """Passes until every sequence has its whole reply, then closes them."""
    feeds = feeds or {}
    while any(not s.generated or s in feeds for s in sequences):
        feeds = step(backend, feeds)
    for seq in sequences:
        backend.close_sequence(seq)


def reply(backend, tokens, owner) -> tuple[list[int], int]:
    """(greedy reply tokens, prompt tokens read for it)."""
    read_before = backend.cache_counters.tokens_read
    seq = backend.open_sequence_for(owner, tokens, GREEDY)
    run(backend, [seq])
    return list(seq.generated), backend.cache_counters.tokens_read - read_before


def text(backend, tokens) -> str:
    return b"".join(backend.token_bytes(t, skip_special=True) for t in tokens).decode("utf-8", "replace")


def shared_start(backend) -> int:
    first, second = prompt(backend, "Hello!"), prompt(backend, "Good evening.")
    return next(i for i, (a, b) in enumerate(zip(first, second)) if a != b)


def test_the_character_is_about_a_thousand_tokens(uncached):
    assert 1000 <= shared_start(uncached) <= 1200


def test_a_second_user_reads_only_their_own_tokens_and_the_first_keeps_their_chat(cached, uncached):
    ann = prompt(cached, ANN_MESSAGE)
    ann_reply, ann_read = reply(cached, ann, "ann")
    assert ann_read == len(ann)
    ben = prompt(cached, "Captain, tell me about the storm of 1893.")
    own = len(ben) - shared_start(cached)
    ben_reply, ben_read = reply(cached, ben, "ben")
    assert ben_read == own, f"ben read {ben_read} tokens, his own part is {own}"
    assert cached.cache_counters.copies == 1
    assert ben_reply == reply(uncached, ben, "ben")[0], "the copied prefix changed the greedy reply"
    # ann's slot was not cut back for ben: her next turn reads only what it adds
    follow_up = prompt(cached, "And the fog?", [(ANN_MESSAGE, text(cached, ann_reply))])
    _, read = reply(cached, follow_up, "ann")
    assert read < len(follow_up) - len(ann) + 16


def test_the_prefix_is_copied_from_a_user_still_generating(cached, uncached):
    ann = cached.open_sequence_for("ann", prompt(cached, "Tell me a long story about the sea."),
                                   GenerationParams(do_sample=False, max_new_tokens=40, ban_eos_token=True))
    feeds = {}
    while len(ann.generated) < 3:            # ann's prompt read; her reply is under way
        feeds = step(cached, feeds)
    ben_tokens = prompt(cached, "Captain, what do you see from the tower?")
    ben = cached.open_sequence_for("ben", ben_tokens, GREEDY)
    assert ben.n_reused == shared_start(cached), "ben's prompt did not start from ann's cache"
    run(cached, [ann, ben], feeds)
    assert ben.generated == reply(uncached, ben_tokens, "ben")[0]


def test_a_prefix_saved_in_host_memory_serves_another_user_and_stays_for_its_owner(cached, uncached):
    ann = prompt(cached, ANN_MESSAGE)
    ann_reply, _ = reply(cached, ann, "ann")
    for who in ("cid", "dee"):       # two other chats take both slots: ann's goes to host memory
        reply(cached, prompt(cached, f"Hello, I am {who}. " + "Tell me about the weather. " * 10,
                             system=f"You are {who}'s assistant."), who)
    assert cached.cache_counters.saves >= 1
    ben = prompt(cached, "Captain, is the lamp oil running low?")
    restores = cached.cache_counters.restores
    ben_reply, read = reply(cached, ben, "ben")
    assert cached.cache_counters.restores == restores + 1
    assert read == len(ben) - shared_start(cached)
    assert ben_reply == reply(uncached, ben, "ben")[0]
    # ann's own copy was only lent: her whole chat still comes back from host memory
    follow_up = prompt(cached, "And the fog?", [(ANN_MESSAGE, text(cached, ann_reply))])
    _, read = reply(cached, follow_up, "ann")
    assert read < len(follow_up) - len(ann) + 16


# ---- the planner's choices, without a model -------------------------------------------------

def _table(*holdings, host_bytes=1 << 20) -> SlotTable:
    table = SlotTable(len(holdings), reuse=True, host_bytes=host_bytes)
    for slot, (owner, tokens) in zip(table.slots, holdings):
        table.occupy(slot, owner)
        table.release(slot, list(tokens))
    return table


PREFIX = list(range(1000, 1000 + 4 * MIN_COPY_TOKENS))


def test_plan_copies_a_shared_start_into_the_empty_slot_rather_than_cut_another_chat():
    table = _table(("ann", PREFIX + [1, 2, 3]), ("", []))
    plan = table.plan(PREFIX + [7, 8], "ben")
    assert plan.copy_from is table.slots[0] and plan.slot is table.slots[1]
    assert plan.keep == len(PREFIX)


def test_plan_copies_from_a_busy_slot_and_never_into_one_with_a_copy_pending():
    table = _table(("ann", PREFIX + [1]), ("", []), ("", []))
    table.occupy(table.slots[0], "ann")                   # ann is generating
    plan = table.plan(PREFIX + [9], "ben")
    assert plan.copy_from is table.slots[0]
    table.copy_queued(plan.copy_from, plan.slot)
    table.occupy(plan.slot, "ben")
    table.release(plan.slot, [])                           # ben cancelled before any decode
    again = table.plan(PREFIX + [5], "cid")
    assert again.slot is not plan.slot, "a slot whose copy has not run yet was reused"
    table.copies_applied()
    assert not any(slot.copy_pending for slot in table.slots)


def test_plan_lends_another_owners_host_copy_and_gives_back_the_owners_own():
    table = _table(("cid", [5] * 100), ("dee", [6] * 100), host_bytes=1 << 20)
    table.host.put(SavedState(PREFIX + [1, 2], "ann", b"x" * 10))
    lent = table.plan(PREFIX + [3], "ben")
    assert lent.restore is not None and len(table.host) == 1, "ann's copy left the host cache"
    table.occupy(lent.slot, "ben")
    back = table.plan(PREFIX + [1, 2, 4], "ann")
    assert back.restore is not None and back.keep == len(PREFIX) + 2
    assert len(table.host) == 0, "ann's own chat is held by her slot now"
