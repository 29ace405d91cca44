"""The Transformers backend on a real model (the fp16 folder made from the default GGUF),
driven through the scheduler as the UI and the API drive it."""
from __future__ import annotations

import pytest

from modules.events import TextDelta
from modules.params import GenerationParams
from modules.template_render import render_chat_template
from modules.text_stream import ReplyText
from tests.conftest import loaded_test_model, scheduler_over

FRANCE = "Tell me the capital of France."
GERMANY = "Tell me the capital of Germany."
POEM = "Write a short poem about the sea."


# ---- helpers shared with test_gptq_backend.py -----------------------------------------------
def chat(backend, text: str) -> str:
    return render_chat_template(backend.info.chat_template, [{"role": "user", "content": text}])


def greedy(max_new_tokens: int = 16, **changes) -> GenerationParams:
    return GenerationParams(do_sample=False, max_new_tokens=max_new_tokens, **changes)


def check_paris(scheduler, backend):
    result = scheduler.submit(chat(backend, FRANCE), greedy()).result()
    assert result.reason == "stop", result
    assert "Paris" in result.text
    assert result.tokens_per_second and result.tokens_per_second > 0


def check_same_seed_same_text(scheduler, backend):
    params = GenerationParams(temperature=1.0, seed=1234, max_new_tokens=12)
    prompt = chat(backend, "Write a short poem about the sea.")
    first = scheduler.submit(prompt, params).text()
    assert first and scheduler.submit(prompt, params).text() == first
    others = {scheduler.submit(prompt, params.replace(seed=s)).text() for s in (1, 2)}
    assert others != {first}, "different seeds should not all give the same text"


def check_ban_eos(scheduler, backend):
    result = scheduler.submit(chat(backend, FRANCE), greedy(10, ban_eos_token=True,
                                                             skip_special_tokens=False)).result()
    assert result.reason == "length" and result.n_tokens == 10
    assert "<|im_end|>" not in result.text
    assert result.text.startswith("The capital of France is Paris")


# ---- tests ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def backend():
    yield from loaded_test_model("fp16", parallel=4)


@pytest.fixture(scope="module")
def scheduler(backend):
    yield from scheduler_over(backend, "The test module is over.")


def test_model_info(backend):
    info = backend.info
    assert info.loader == "Transformers" and info.n_ctx == 2048 and info.n_ctx_train == 8192
    assert info.max_sequences == 4 and "<|im_start|>" in info.chat_template
    assert info.details["dtype"] == "float32" and info.details["device"] == "cpu"


def test_greedy_answer_names_paris(scheduler, backend):
    check_paris(scheduler, backend)


def test_same_seed_gives_same_text(scheduler, backend):
    check_same_seed_same_text(scheduler, backend)


def test_ban_eos_writes_until_max_new_tokens(scheduler, backend):
    check_ban_eos(scheduler, backend)


def test_chat_end_token_ends_generation(backend):
    im_end = backend.tokenize("<|im_end|>", add_bos=False)
    assert len(im_end) == 1 and backend.is_end_of_generation(im_end[0])
    assert backend.token_bytes(im_end[0], skip_special=True) == b""
    assert backend.token_bytes(im_end[0], skip_special=False) == b"<|im_end|>"
    assert len(backend.tokenize("<|im_end|>", add_bos=False, special=False)) > 1


def test_emoji_round_trips(scheduler, backend):
    text = "Pizza 🍕, flags 🇫🇷, café, 日本"
    pieces = [backend.token_bytes(t, skip_special=True) for t in backend.tokenize(text, add_bos=False)]
    assert any(_is_partial_utf8(p) for p in pieces), "expected tokens holding part of a character"
    reply = ReplyText()
    shown = "".join(reply.add(p) for p in pieces) + reply.finish()
    assert shown == text
    result = scheduler.submit(chat(backend, "Write the pizza emoji 🍕 three times."), greedy(6)).result()
    assert "🍕" in result.text and "\ufffd" not in result.text


def test_sequences_decode_together_without_mixing(scheduler, backend):
    alone = scheduler.submit(chat(backend, GERMANY), greedy()).text()
    both = [scheduler.submit(chat(backend, q), greedy()) for q in (FRANCE, GERMANY)]
    texts = [r.text() for r in both]
    assert "Paris" in texts[0] and texts[1] == alone and "Berlin" in alone


def test_replies_joining_and_leaving_a_batch_keep_their_text(scheduler, backend):
    """Decoding together (one batched call) must not change what anyone gets: fp32 gives
    the same greedy text as decoding alone, while others start and finish alongside."""
    long = greedy(20, ban_eos_token=True)
    alone = {q: scheduler.submit(chat(backend, q), long).text() for q in (GERMANY, POEM)}
    first = scheduler.submit(chat(backend, GERMANY), long)
    short = scheduler.submit(chat(backend, FRANCE), greedy())       # leaves the batch early
    next(e for e in first.events() if isinstance(e, TextDelta))
    late = scheduler.submit(chat(backend, POEM), long)             # joins mid-way
    assert first.text() == alone[GERMANY]
    assert late.text() == alone[POEM]
    assert "Paris" in short.text()


def test_probabilities_view(backend):
    prompt = backend.tokenize(chat(backend, FRANCE), add_bos=True)
    plain = backend.open_sequence(prompt, greedy())
    top_two = backend.open_sequence(prompt, GenerationParams(top_k=2))
    try:
        assert set(backend.forward({})) == {plain, top_two}
        top = backend.top_candidates(plain, 5)
        assert backend.token_text(top[0][0]) == "The" and len(top) == 5
        assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
        truncated = backend.top_candidates(top_two, 5)
        assert [t for t, _ in truncated] == [t for t, _ in top[:2]]
        assert sum(p for _, p in truncated) == pytest.approx(1.0)
    finally:
        backend.close_sequence(plain)
        backend.close_sequence(top_two)


def test_settings_it_cannot_honour_are_reported(backend):
    messages = backend.warnings_for(GenerationParams(logit_bias={10**7: 1.0}))
    assert any(str(10**7) in m for m in messages)
    assert backend.warnings_for(GenerationParams()) == []
    # Grammars are enforced here (llguidance), so they draw no warning.
    assert backend.warnings_for(GenerationParams(grammar_string='root ::= "yes"')) == []


def _is_partial_utf8(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True
