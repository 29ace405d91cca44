"""--cache-type: a quantised K and V cache loads the default model and still answers."""
from __future__ import annotations

import pytest

from loaders.settings import LoadSettings
from modules.model_manager import ModelManager
from modules.params import GenerationParams
from modules.scheduler import Scheduler
from tests.conftest import DEFAULT_GGUF

PROMPT = "<|im_start|>user\nTell me the capital of France.<|im_end|>\n<|im_start|>assistant\n"
GREEDY = GenerationParams(do_sample=False, max_new_tokens=16)


@pytest.fixture
def load_with_cache():
    manager = ModelManager(Scheduler(), DEFAULT_GGUF.parent)

    def load(cache_type: str) -> ModelManager:
        result = manager.load(DEFAULT_GGUF.name, LoadSettings(ctx_size=1024, parallel=2, cache_type=cache_type))
        assert result.ok, result.message
        assert manager.info.details["KV cache type"] == cache_type
        return manager
    yield load
    manager.unload()


def test_a_q8_0_cache_answers_and_the_next_turn_reads_from_it(load_with_cache):
    manager = load_with_cache("q8_0")
    reply = manager.scheduler.submit(PROMPT, GREEDY).result()
    assert reply.ok and "Paris" in reply.text, reply.error or reply.text
    # the next turn of the chat starts from the quantised cache the first one left
    follow_up = (PROMPT + reply.text + "<|im_end|>\n<|im_start|>user\nAnd of Italy?<|im_end|>\n"
                 "<|im_start|>assistant\n")
    second = manager.scheduler.submit(follow_up, GREEDY).result()
    assert second.ok and "Rome" in second.text, second.error or second.text
    assert manager.backend.cache_counters.tokens_reused > 0


def test_a_q4_0_cache_loads_and_answers(load_with_cache):
    # (q4_0 is too coarse for a 135M model to keep a second turn apart; a first answer it gets)
    reply = load_with_cache("q4_0").scheduler.submit(PROMPT, GREEDY).result()
    assert reply.ok and "Paris" in reply.text, reply.error or reply.text
