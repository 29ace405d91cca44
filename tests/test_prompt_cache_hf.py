"""Prompt-cache reuse in the Transformers and GPTQ backends, on the real fp16 and GPTQ test
models: as with llama.cpp (tests/test_prompt_cache.py), a chat's next turn reads only what
it adds, gives token for token the reply it gives when the whole prompt is read, and misses
the cache exactly from the first token that changed. For each model two schedulers run the
same conversations: one with reuse, one without."""
from __future__ import annotations

import pytest

from loaders.llama_cpp_cache import common_prefix
from modules.params import GenerationParams
from modules.scheduler import Scheduler
from tests.conftest import TEST_MODEL_LOADERS
from tests.test_prompt_cache import (HISTORY, SYSTEM, _text, chat_tokens, check_next_turns, conversation,
                                     greedy, reply)


def _load(kind: str, cache_reuse: bool, parallel: int = 2):
    from loaders import load_backend
    from loaders.settings import LoadSettings
    from tools.make_test_models import ensure_test_models
    folder = ensure_test_models()[kind]
    return load_backend(TEST_MODEL_LOADERS[kind], str(folder),
                        LoadSettings(ctx_size=2048, parallel=parallel, cache_reuse=cache_reuse))


@pytest.fixture(scope="module", params=list(TEST_MODEL_LOADERS))
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def pair(kind):
    """(cached, uncached) schedulers on the same model."""
    schedulers = [Scheduler(_load(kind, reuse)) for reuse in (True, False)]
    yield schedulers
    for scheduler in schedulers:
        scheduler.swap_backend(None, "done").unload()


def test_next_turns_read_only_new_tokens_and_reply_the_same(pair):
    cached, uncached = pair
    check_next_turns(cached, uncached)
    assert "reused from kept caches" in cached.backend.info.details["prompt cache use"]


def test_regenerate_reads_nothing_and_gives_the_same_reply(pair):
    """The kept cache has the scores its prompt ended with: the same prompt again reads
    nothing and, with the same seed, draws exactly the same reply (bf16 included)."""
    cached, uncached = pair
    prompt = chat_tokens(cached.backend, conversation(HISTORY[:2] + [("Tell me the capital of Italy.", None)]))
    first, _ = reply(cached, prompt, "ben")      # may reuse the start of ann's chat, above
    again, read_again = reply(cached, prompt, "ben")
    assert read_again == 0
    assert again == first == reply(uncached, prompt, "ben")[0]
    sampled = GenerationParams(temperature=1.0, seed=1234, max_new_tokens=16)
    drawn, _ = reply(cached, prompt, "ben", sampled)
    for owner in ("ben", "another person"):
        assert reply(cached, prompt, owner, sampled) == (drawn, 0)


@pytest.mark.parametrize("change", ["system prompt", "earlier message"])
def test_a_change_reuses_exactly_up_to_the_first_changed_token(pair, change):
    cached, uncached = pair
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
    reused_before = backend.cache_counters.tokens_reused
    tokens, read = reply(cached, after, owner)
    assert backend.cache_counters.tokens_reused - reused_before == shared
    assert read == len(after) - shared
    assert tokens == reply(uncached, after, owner)[0]


def test_replies_decoded_together_keep_their_caches(pair):
    """Two chats decoded in one batch: each one's next turn reads only what it adds, and
    both replies are those of the uncached model."""
    cached, uncached = pair
    backend = cached.backend
    chats = {who: conversation(HISTORY[:1] + [(question, None)], system=f"You are {who}'s assistant.")
             for who, question in (("eve", "Tell me the capital of Peru."), ("fay", "Tell me the capital of Chile."))}
    prompts = {who: chat_tokens(backend, messages) for who, messages in chats.items()}
    requests = {who: cached.submit(prompts[who], greedy(), who) for who in prompts}
    answers = {}
    for who, request in requests.items():
        assert request.result().ok
        answers[who] = list(request.generated)
        assert answers[who] == reply(uncached, prompts[who], who)[0]
    for who in prompts:
        messages = chats[who][:-1] + [{"role": "user", "content": chats[who][-1]["content"]},
                                      {"role": "assistant", "content": _text(backend, answers[who])},
                                      {"role": "user", "content": "Thank you. One more, please."}]
        prompt = chat_tokens(backend, messages)
        tokens, read = reply(cached, prompt, who)
        assert read < len(prompt) - len(prompts[who]) + 16, f"{who}'s chat was read again"
        assert tokens == reply(uncached, prompt, who)[0]


def test_another_chat_sharing_a_start_copies_it_and_leaves_the_first_chat_whole(pair):
    cached, uncached = pair
    backend = cached.backend
    gus = chat_tokens(backend, conversation(HISTORY[:2] + [("Tell me the capital of Kenya.", None)]))
    hal = chat_tokens(backend, conversation([("Tell me the capital of Nepal.", None)]))
    shared = common_prefix(gus, hal)
    assert shared > 5                                     # the system prompt
    reply(cached, gus, "gus")
    tokens, read = reply(cached, hal, "hal")
    assert read == len(hal) - shared
    assert tokens == reply(uncached, hal, "hal")[0]
    _, read = reply(cached, gus, "gus")                   # gus's chat is still kept whole
    assert read == 0


def test_kept_caches_and_running_sequences_stay_within_parallel(kind):
    """parallel=2: three chats in turn; the least recently used is dropped and read again."""
    scheduler = Scheduler(_load(kind, True, parallel=2))
    try:
        backend = scheduler.backend
        prompts = {who: chat_tokens(backend, conversation([(f"Tell me the capital of {country}.", None)],
                                                          system=f"You are {who}'s assistant."))
                   for who, country in (("ivy", "Chad"), ("jo", "Mali"), ("kai", "Iraq"))}
        for who in prompts:
            reply(scheduler, prompts[who], who, greedy(max_new_tokens=4))
        assert "2 kept" in backend.info.details["prompt cache use"]
        shared = max(common_prefix(prompts["ivy"], prompts[who]) for who in ("jo", "kai"))
        assert reply(scheduler, prompts["kai"], "kai", greedy(max_new_tokens=4))[1] == 0
        assert reply(scheduler, prompts["ivy"], "ivy", greedy(max_new_tokens=4))[1] == len(prompts["ivy"]) - shared
    finally:
        scheduler.swap_backend(None, "done").unload()


def test_reuse_off_reads_every_prompt_whole(pair):
    _, uncached = pair
    prompt = chat_tokens(uncached.backend, conversation(HISTORY[:1] + [("Tell me the capital of Chad.", None)]))
    assert reply(uncached, prompt, "jo")[1] == len(prompt)
    assert reply(uncached, prompt, "jo")[1] == len(prompt)
    assert uncached.backend.info.details["prompt cache"].startswith("off")
