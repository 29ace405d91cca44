"""Sharing one model: fair turns, queue places, and isolation between users."""
from __future__ import annotations

import pytest

from loaders.settings import LoadSettings
from modules.events import Queued, TextDelta
from modules.params import GenerationParams
from modules.scheduler import Scheduler
from tests.conftest import DEFAULT_GGUF

SHORT = GenerationParams(seed=1, max_new_tokens=8, ban_eos_token=True)


@pytest.fixture(scope="module")
def one_slot_scheduler():
    from loaders.llama_cpp_loader import load
    backend = load(str(DEFAULT_GGUF), LoadSettings(ctx_size=512, parallel=1), lambda f, m: None)
    yield Scheduler(backend)
    backend.unload()


def ended_at(request) -> float:
    return request.submitted_at + request.result().seconds


def test_a_burst_from_one_user_does_not_hold_back_another(one_slot_scheduler):
    scheduler = one_slot_scheduler
    burst = [scheduler.submit("Once upon a time", SHORT, owner="alice") for _ in range(3)]
    newcomer = scheduler.submit("The weather today", SHORT, owner="bob")
    assert all(r.result().ok for r in burst + [newcomer])
    # One slot: bob waits for the request that was running, not for alice's whole burst.
    starts = sorted(burst + [newcomer], key=lambda r: r.first_token_at)
    assert starts.index(newcomer) <= 1, [r.owner for r in starts]


def test_waiting_users_are_told_their_place(one_slot_scheduler):
    scheduler = one_slot_scheduler
    running = scheduler.submit("Once upon a time", GenerationParams(max_new_tokens=40, ban_eos_token=True), owner="a")
    waiting = [scheduler.submit("Hello", SHORT, owner=f"user{i}") for i in range(3)]
    last = waiting[-1]
    places = [e.ahead for e in last.events() if isinstance(e, Queued)]
    assert places and places[0] == 2 and places[-1] == 0
    assert last.result().ok and running.result().ok


def test_cancel_while_waiting_leaves_the_queue_at_once(one_slot_scheduler):
    scheduler = one_slot_scheduler
    running = scheduler.submit("Once upon a time", GenerationParams(max_new_tokens=60, ban_eos_token=True), owner="a")
    queued = scheduler.submit("Hello", SHORT, owner="b")
    queued.cancel()
    scheduler.wake()
    result = queued.result()
    assert result.reason == "cancelled" and result.n_tokens == 0
    assert ended_at(queued) < ended_at(running), "the cancelled request waited for its turn"
    assert running.result().reason == "length"


def test_an_error_in_one_request_leaves_the_others_streaming(scheduler, chat_prompt):
    """The bad request arrives while another reply is decoding and fails beside it."""
    params = GenerationParams(do_sample=False, max_new_tokens=32, ban_eos_token=True)
    solo = scheduler.submit(chat_prompt("Tell me the capital of France."), params).text()
    good = scheduler.submit(chat_prompt("Tell me the capital of France."), params)
    for event in good.events(timeout=300):
        if isinstance(event, TextDelta) and event.n_tokens >= 3:
            break
    bad = scheduler.submit(chat_prompt("Hi"), GenerationParams(logit_bias={999999: 1.0}))
    assert bad.result().reason == "error" and "vocabulary" in bad.result().error
    assert ended_at(bad) < ended_at(good), "the good reply had finished before the bad one failed"
    assert good.result().reason == "length" and good.text() == solo
