"""Raw completion, tokens and probabilities (Notebook and Default tabs) on the real default
model, through the front door as the tabs use it."""
from __future__ import annotations

import threading
import time

import pytest

from modules.front_door import FrontDoor, GenerationError, SessionControl
from modules.limits import Limits
from modules.params import GenerationParams
from modules.roles import Identity

FRANCE = "The capital of France is"


def greedy(**changes) -> GenerationParams:
    return GenerationParams(do_sample=False, max_new_tokens=changes.pop("max_new_tokens", 12), **changes)


TESTER = Identity(owner="tester", user="tester", address="127.0.0.1", is_admin=False)


@pytest.fixture(scope="module")
def door(scheduler):
    return FrontDoor(scheduler, Limits(max_requests_per_user=8))


def run(door, text, params, control=None) -> list:
    return list(door.stream_completion(TESTER, text, params, control))


def test_raw_completion_continues_the_text(door):
    updates = run(door, FRANCE, greedy())
    final = updates[-1]
    assert final.finished is not None and final.finished.ok
    # No chat template: the model continues the sentence instead of answering it.
    assert final.text.startswith(" Paris")
    assert final.finished.n_tokens > 0
    assert "tokens/s" in final.status and f"{final.finished.n_tokens} tokens" in final.status
    # Each streamed update holds the whole continuation so far.
    for earlier, later in zip(updates, updates[1:]):
        assert later.text.startswith(earlier.text)


def test_streamed_updates_are_coalesced(door):
    stamps = []
    for update in door.stream_completion(TESTER, "Once upon a time", greedy(max_new_tokens=60, ban_eos_token=True)):
        if update.finished is None:
            stamps.append(time.perf_counter())
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(gap >= 0.045 for gap in gaps), "more than 20 updates per second"


def test_stop_ends_only_this_sessions_generation(door):
    mine, other = SessionControl(), SessionControl()
    results = {}

    def consume(name, control, params):
        results[name] = run(door, "Once upon a time", params, control)[-1].finished

    long = GenerationParams(max_new_tokens=2000, ban_eos_token=True, seed=1)
    threads = [threading.Thread(target=consume, args=("mine", mine, long)),
               threading.Thread(target=consume, args=("other", other, greedy(max_new_tokens=40)))]
    for thread in threads:
        thread.start()
    deadline = time.time() + 60
    while (mine.request is None or not mine.request.generated) and time.time() < deadline:
        time.sleep(0.02)
    assert mine.stop()
    at_stop = len(mine.request.generated)     # read after Stop: later tokens are the overrun
    for thread in threads:
        thread.join(120)
    assert results["mine"].reason == "cancelled"
    assert results["mine"].n_tokens <= at_stop + 1, f"{results['mine'].n_tokens - at_stop} tokens after Stop"
    assert results["other"].ok and results["other"].n_tokens > 0


def test_closing_the_stream_frees_the_request(door):
    """A browser that goes away stops iterating; the request must be cancelled, not left running."""
    control = SessionControl()
    stream = door.stream_completion(TESTER, "Once upon a time",
                                    greedy(max_new_tokens=2000, ban_eos_token=True), control)
    next(stream)
    stream.close()
    at_close = len(control.request.generated)
    finished = control.request.result()
    assert finished.reason == "cancelled"
    assert finished.n_tokens <= at_close + 1, f"{finished.n_tokens - at_close} tokens after the stream closed"


def test_prompt_longer_than_the_context_is_a_clear_error(door, llama_backend):
    long_text = "word " * (llama_backend.info.n_ctx + 100)
    final = run(door, long_text, greedy())[-1]
    assert final.finished.reason == "error"
    assert "context" in final.status and final.status.startswith("Error:")
    with pytest.raises(GenerationError, match="context"):
        door.next_token_probabilities(TESTER, long_text, GenerationParams())


def test_probabilities_sum_to_one_and_are_sorted(door, llama_backend):
    everything = door.next_token_probabilities(TESTER, FRANCE, GenerationParams(), count=10**6)
    assert sum(c.probability for c in everything) == pytest.approx(1.0, abs=1e-3)
    top = door.next_token_probabilities(TESTER, FRANCE, GenerationParams(), count=10)
    assert len(top) == 10
    probabilities = [c.probability for c in top]
    assert probabilities == sorted(probabilities, reverse=True)
    assert top[0].text == " Paris"
    assert top[0].text == llama_backend.token_text(top[0].token)


def test_probabilities_flatten_as_temperature_rises(door):
    tops = [door.next_token_probabilities(TESTER, FRANCE, GenerationParams(temperature=t), count=5)[0].probability
            for t in (0.5, 1.0, 1.5, 2.5)]
    assert tops == sorted(tops, reverse=True) and tops[0] > tops[-1] + 0.3, tops


def test_probabilities_follow_truncation_and_greedy(door):
    top_k = door.next_token_probabilities(TESTER, FRANCE, GenerationParams(top_k=3), count=10)
    assert len(top_k) == 3 and sum(c.probability for c in top_k) == pytest.approx(1.0, abs=1e-3)
    min_p = door.next_token_probabilities(TESTER, FRANCE, GenerationParams(min_p=0.05), count=10)
    assert all(c.probability >= 0.05 * min_p[0].probability * 0.99 for c in min_p)
    only = door.next_token_probabilities(TESTER, FRANCE, greedy(), count=10)
    assert [(c.text, c.probability) for c in only] == [(" Paris", 1.0)]


def test_probabilities_while_a_generation_runs(door):
    control = SessionControl()
    results = []
    worker = threading.Thread(target=lambda: results.append(
        run(door, "Once upon a time", greedy(max_new_tokens=40, ban_eos_token=True), control)[-1]))
    worker.start()
    try:
        candidates = door.next_token_probabilities(TESTER, FRANCE, GenerationParams(), count=5)
    finally:
        worker.join(120)
    assert candidates[0].text == " Paris"
    assert results[0].finished.reason == "length" and results[0].finished.n_tokens == 40


def test_token_view_round_trips_to_the_text(door, llama_backend):
    text = "Hello world!\nThe capital of France is Paris."
    params = GenerationParams()
    tokens = door.token_view(TESTER, text, params)
    ids = [token for token, _ in tokens]
    # The view shows exactly the tokens a generation reads.
    assert ids == llama_backend.tokenize(text, add_bos=params.add_bos_token)
    pieces = b"".join(llama_backend.token_bytes(t, skip_special=False) for t in ids)
    bos = llama_backend.info.bos_token.encode()
    if params.add_bos_token and llama_backend.info.add_bos_default and bos:
        pieces = pieces.removeprefix(bos)
    assert pieces.decode("utf-8") == text
    assert "".join(piece for _, piece in tokens).endswith(text)


def test_an_empty_reply_explains_itself(door):
    """The small model ends its turn at once after this prompt (0 tokens): the status
    line says why and how to get text, instead of a bare '0 tokens'."""
    final = run(door, "Question: What is the capital of Germany?\nAnswer:", greedy())[-1]
    assert final.finished.n_tokens == 0, "the model now writes something here; pick another prompt"
    assert "ended its turn at once" in final.status and "ban_eos_token" in final.status
