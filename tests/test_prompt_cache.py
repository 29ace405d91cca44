"""Prompt-cache reuse in the llama.cpp backend, on the real default model.

A chat's next turn must read only what the turn adds, give exactly the reply it would give
if the whole prompt were read again, and miss the cache exactly from the first token that
changed. Two schedulers run the same conversations: one with reuse, one without.
"""
from __future__ import annotations

import pytest

from loaders.llama_cpp_cache import common_prefix
from modules.chat_prompt import build_chat_prompt
from modules.params import GenerationParams

SYSTEM = "You are a helpful assistant who answers briefly."
HISTORY = [
    ("Tell me the capital of France.", "The capital of France is Paris."),
    ("Tell me the capital of Germany.", "The capital of Germany is Berlin."),
    ("Which river flows through Paris?", "The Seine flows through Paris."),
]


def greedy(**changes) -> GenerationParams:
    return GenerationParams(do_sample=False, max_new_tokens=changes.pop("max_new_tokens", 16), **changes)


def _load(ctx_size=2560, parallel=2, **settings):
    from loaders.llama_cpp_loader import load
    from loaders.settings import LoadSettings
    from tests.conftest import DEFAULT_GGUF
    # llama.cpp's logits depend on how tokens were batched (docs/prompt_cache.md, "Identical
    # replies"); these prompts give the same greedy replies with the cache on and off with
    # flash attention on, while with it off the second turn's 10th token flips. The default
    # (off) is compared in tests/test_shared_prefix.py.
    settings.setdefault("flash_attn", True)
    return load(str(DEFAULT_GGUF), LoadSettings(ctx_size=ctx_size, parallel=parallel, **settings),
                lambda f, m: None)


def _scheduler(**settings):
    from modules.scheduler import Scheduler
    backend = _load(**settings)
    return Scheduler(backend), backend


@pytest.fixture(scope="module")
def cached():
    scheduler, backend = _scheduler(cache_reuse=True, cache_ram=256)
    yield scheduler
    scheduler.swap_backend(None, "done")
    backend.unload()


@pytest.fixture(scope="module")
def uncached():
    scheduler, backend = _scheduler(cache_reuse=False)
    yield scheduler
    scheduler.swap_backend(None, "done")
    backend.unload()


def chat_tokens(backend, messages, continue_last=False) -> list[int]:
    """The prompt a chat tab builds for these messages, as token ids."""
    info = backend.info
    built = build_chat_prompt(messages, info.chat_template, lambda text: 0, info.n_ctx,
                              bos_token=info.bos_token, eos_token=info.eos_token,
                              continue_last=continue_last)
    return backend.tokenize(built.text, add_bos=info.add_bos_default)


def conversation(turns, system=SYSTEM) -> list[dict]:
    messages = [{"role": "system", "content": system}]
    for user, assistant in turns:
        messages.append({"role": "user", "content": user})
        if assistant is not None:
            messages.append({"role": "assistant", "content": assistant})
    return messages


def reply(scheduler, tokens, owner, params=None) -> tuple[list[int], int]:
    """Greedy reply tokens, and how many prompt tokens the backend read for it."""
    counters = scheduler.backend.cache_counters
    before = counters.tokens_read
    request = scheduler.submit(tokens, params or greedy(), owner)
    finished = request.result()
    assert finished.ok, finished.error
    return list(request.generated), counters.tokens_read - before


def check_next_turns(cached, uncached) -> None:
    """Each turn of HISTORY, sent to both schedulers: the same greedy reply, and the cached
    one reads little more than the new message. Shared with the Transformers/GPTQ tests."""
    backend = cached.backend
    history = []
    for user, _ in HISTORY:
        prompt = chat_tokens(backend, conversation(history + [(user, None)]))
        with_cache, read = reply(cached, prompt, "ann")
        without_cache, read_all = reply(uncached, prompt, "ann")
        assert with_cache == without_cache, "the cache changed the greedy reply"
        assert read_all == len(prompt)
        if history:
            # Only the new message (and the last reply's closing, if it was read differently).
            new_part = len(prompt) - len(chat_tokens(backend, conversation(history)[:-1] + [
                {"role": "user", "content": history[-1][0]}]))
            assert read <= new_part + 16, (read, new_part, len(prompt))
            assert read < len(prompt) // 2
        history.append((user, _text(backend, with_cache)))


def test_next_turns_read_only_new_tokens_and_reply_the_same(cached, uncached):
    check_next_turns(cached, uncached)


def _text(backend, tokens) -> str:
    return b"".join(backend.token_bytes(t, skip_special=True) for t in tokens).decode("utf-8", "replace")


def test_regenerate_hits_the_cache_and_gives_the_same_reply(cached, uncached):
    prompt = chat_tokens(cached.backend, conversation(HISTORY[:2] + [("Tell me the capital of Italy.", None)]))
    first, read_first = reply(cached, prompt, "ben")
    again, read_again = reply(cached, prompt, "ben")
    assert read_first == len(prompt)
    assert read_again == 1, "Regenerate must read only the last prompt token again (for fresh logits)"
    assert again == first == reply(uncached, prompt, "ben")[0]


def test_continue_reads_only_the_partial_reply(cached, uncached):
    backend = cached.backend
    turns = HISTORY[:1] + [("Tell me the capital of Spain.", None)]
    prompt = chat_tokens(backend, conversation(turns))
    answer, _ = reply(cached, prompt, "cid")
    partial = _text(backend, answer[:4])
    continued = chat_tokens(backend, conversation(turns[:-1] + [(turns[-1][0], partial)]),
                            continue_last=True)
    tokens, read = reply(cached, continued, "cid")
    assert read <= len(continued) - len(prompt) + 2, "Continue read more than the partial reply"
    assert tokens == reply(uncached, continued, "cid")[0]


@pytest.mark.parametrize("change", ["system prompt", "earlier message"])
def test_a_change_misses_the_cache_exactly_from_the_first_changed_token(cached, uncached, change):
    backend = cached.backend
    owner = f"dee-{change}"
    before = chat_tokens(backend, conversation(HISTORY + [("Tell me the capital of Japan.", None)]))
    reply(cached, before, owner)
    if change == "system prompt":
        edited = conversation(HISTORY + [("Tell me the capital of Japan.", None)],
                              system=SYSTEM.replace("briefly", "in detail"))
    else:
        turns = list(HISTORY)
        turns[1] = ("Tell me the capital of Austria.", "The capital of Austria is Vienna.")
        edited = conversation(turns + [("Tell me the capital of Japan.", None)])
    after = chat_tokens(backend, edited)
    shared = common_prefix(before, after)
    assert 0 < shared < len(before) - 10
    tokens, read = reply(cached, after, owner)
    assert read == len(after) - shared
    assert tokens == reply(uncached, after, owner)[0]


def test_two_users_chats_each_keep_their_slot(cached):
    backend = cached.backend
    first = {"eve": conversation(HISTORY[:2] + [("Tell me the capital of Peru.", None)]),
             "fay": conversation([("Write a short poem about the sea.", "Waves roll in, waves roll out."),
                                  ("Now one about the moon.", None)], system="You are a poet.")}
    prompts = {who: chat_tokens(backend, messages) for who, messages in first.items()}
    answers = {who: _text(backend, reply(cached, prompts[who], who)[0]) for who in prompts}
    for who in ("eve", "fay", "eve", "fay"):        # turns alternate: neither evicts the other
        messages = first[who][:-1] + [
            {"role": "user", "content": first[who][-1]["content"]},
            {"role": "assistant", "content": answers[who]},
            {"role": "user", "content": "Thank you. One more, please."}]
        prompt = chat_tokens(backend, messages)
        tokens, read = reply(cached, prompt, who)
        assert read < len(prompt) - len(prompts[who]) + 16, f"{who}'s chat was read again"
        first[who] = messages
        prompts[who], answers[who] = prompt, _text(backend, tokens)


def test_a_chat_taken_up_again_is_restored_from_host_memory(cached, uncached):
    """Three chats on two slots: the third reclaims the least recently used slot, whose
    cache goes to host memory and comes back when its owner writes again."""
    backend = cached.backend
    chats = {who: conversation(HISTORY[:2] + [(f"Tell me the capital of {country}.", None)],
                               system=f"You are {who}'s assistant.")
             for who, country in (("gus", "Chile"), ("hal", "Kenya"), ("ivy", "Nepal"))}
    prompts = {who: chat_tokens(backend, messages) for who, messages in chats.items()}
    for who in prompts:
        reply(cached, prompts[who], who)
    counters = backend.cache_counters
    restores = counters.restores
    tokens, read = reply(cached, prompts["gus"], "gus")       # gus's slot was handed to ivy
    assert counters.restores == restores + 1
    assert read == 1
    assert tokens == reply(uncached, prompts["gus"], "gus")[0]
    details = backend.info.details
    assert "restored from host memory" in details["prompt cache use"]
    assert "MiB" in details["prompt cache in host memory"]


def test_reuse_off_reads_every_prompt_whole(uncached):
    prompt = chat_tokens(uncached.backend, conversation(HISTORY[:1] + [("Tell me the capital of Chad.", None)]))
    assert reply(uncached, prompt, "jo")[1] == len(prompt)
    assert reply(uncached, prompt, "jo")[1] == len(prompt)
    assert uncached.backend.info.details["prompt cache"].startswith("off")


# ---- reading a long prompt while another reply streams ---------------------------------------

def _step(backend, feeds, streaming):
    """One pass driven as the scheduler drives it; returns the sequences that got logits."""
    ready = backend.forward(feeds)
    feeds.clear()
    if streaming in ready:
        token = backend.sample(streaming)
        streaming.generated.append(token)
        feeds[streaming] = token
    return ready


@pytest.mark.parametrize("chunk", [0, 16])
def test_a_long_prompt_does_not_stall_a_streaming_reply(chunk):
    """Counted in passes, not seconds (the machine is shared): the streaming reply gets its
    next token in every pass while a newcomer's 2,000-token prompt is read in small chunks.
    chunk 0 sizes the chunks from measured pass times, as the server does by default."""
    backend = _load(ctx_size=2560, parallel=2, prefill_chunk=chunk)
    try:
        streaming = backend.open_sequence_for(
            "kim", chat_tokens(backend, conversation([("Write a long story about the sea.", None)])),
            greedy(ban_eos_token=True))
        feeds = {}
        while len(streaming.generated) < 20:
            _step(backend, feeds, streaming)
        story = " ".join(f"Line {i}: the waves came in and went out again." for i in range(200))
        long_prompt = backend.tokenize(story, add_bos=False)[:2000]
        assert len(long_prompt) == 2000
        newcomer = backend.open_sequence_for("lee", long_prompt, greedy())
        passes, largest = 0, 0
        while newcomer.n_past < len(long_prompt):
            read_before = newcomer.n_past
            ready = _step(backend, feeds, streaming)
            passes += 1
            largest = max(largest, newcomer.n_past - read_before)
            assert streaming in ready, f"the streaming reply got no token in pass {passes}"
        assert newcomer in ready, "the newcomer's first token is ready once its prompt is read"
        assert largest <= (chunk or 128), f"a pass read {largest} prompt tokens at once"
        assert passes >= 2000 // (chunk or 128)
    finally:
        backend.unload()


def test_prompt_chunks_are_sized_from_measured_pass_times():
    """Sizing: a pass with a prompt chunk should take about STALL_FACTOR plain passes."""
    from loaders.prefill_budget import MIN_CHUNK, STALL_FACTOR, PrefillBudget
    cpu = PrefillBudget(batch_tokens=512)
    assert cpu.tokens(generating=0) == 512          # nobody waits: the whole batch
    cpu.record(generating=1, prompt_tokens=0, seconds=0.008)
    cpu.record(generating=0, prompt_tokens=400, seconds=1.6)     # 4 ms a prompt token
    assert cpu.tokens(generating=1) == max(MIN_CHUNK, int((STALL_FACTOR - 1) * 0.008 / 0.004))
    gpu = PrefillBudget(batch_tokens=512)
    gpu.record(generating=4, prompt_tokens=0, seconds=0.010)
    gpu.record(generating=4, prompt_tokens=200, seconds=0.020)   # 0.05 ms a prompt token
    assert abs(gpu.tokens(generating=4) - (STALL_FACTOR - 1) * 0.010 / 0.00005) <= 1
    assert PrefillBudget(batch_tokens=512, fixed_chunk=64).tokens(generating=3) == 64
