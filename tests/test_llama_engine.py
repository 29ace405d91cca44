"""The generation engine on the real default model through llama.cpp."""
from __future__ import annotations

import pytest

from modules.events import Finished, TextDelta
from modules.params import GenerationParams, ParamError

FRANCE = "Tell me the capital of France."


def greedy(**changes) -> GenerationParams:
    return GenerationParams(do_sample=False, max_new_tokens=changes.pop("max_new_tokens", 24), **changes)


def test_greedy_answer_names_paris(scheduler, chat_prompt):
    result = scheduler.submit(chat_prompt(FRANCE), greedy()).result()
    assert result.reason == "stop"
    assert "Paris" in result.text
    assert result.n_tokens > 0 and result.tokens_per_second > 0


def test_top_k_one_equals_greedy(scheduler, chat_prompt):
    reference = scheduler.submit(chat_prompt(FRANCE), greedy()).text()
    sampled = scheduler.submit(chat_prompt(FRANCE), GenerationParams(
        top_k=1, temperature=1.5, seed=123, max_new_tokens=24)).text()
    assert sampled == reference


def test_same_seed_gives_same_text(scheduler, chat_prompt):
    params = GenerationParams(temperature=1.2, top_p=0.95, seed=42, max_new_tokens=40)
    first = scheduler.submit(chat_prompt("Write a short poem about the sea."), params).text()
    second = scheduler.submit(chat_prompt("Write a short poem about the sea."), params).text()
    assert first == second and first
    others = {scheduler.submit(chat_prompt("Write a short poem about the sea."),
                               params.replace(seed=seed)).text() for seed in (1, 2, 3)}
    assert len(others | {first}) > 1, "different seeds should not all give the same text"


def test_stop_string_ends_reply_and_never_shows(scheduler, chat_prompt):
    request = scheduler.submit(chat_prompt(FRANCE), greedy(custom_stopping_strings=["Paris"]))
    shown = ""
    for event in request.events():
        if isinstance(event, TextDelta):
            shown += event.text
            assert "Par" not in shown, "a partial stop string reached the screen"
        elif isinstance(event, Finished):
            final = event
    assert final.reason == "stop"
    assert "Paris" not in final.text and "capital of France" in final.text
    assert shown == final.text


def test_stop_string_in_text_generation_webui_syntax(scheduler, chat_prompt):
    params = GenerationParams.from_dict({"do_sample": False, "max_new_tokens": 24,
                                         "custom_stopping_strings": '"France", "\\n"'})
    result = scheduler.submit(chat_prompt(FRANCE), params).result()
    assert "France" not in result.text and result.reason == "stop"


def test_cancel_inside_a_batch_ends_within_one_token_and_the_others_go_on(scheduler, chat_prompt):
    prompts = [chat_prompt("Write a long story about a dragon."), chat_prompt("Write a long poem."),
               chat_prompt("Count from one to a hundred.")]
    params = greedy(max_new_tokens=48, ban_eos_token=True)
    solo = [scheduler.submit(p, params).text() for p in prompts]
    requests = [scheduler.submit(p, params) for p in prompts]
    victim, others = requests[1], [requests[0], requests[2]]
    for event in victim.events(timeout=300):
        if isinstance(event, TextDelta) and event.n_tokens >= 5:
            break
    victim.cancel()
    at_cancel = len(victim.generated)        # read after the cancel: later tokens are the overrun
    # The cancel really hit a sequence decoding beside others, not one still queued.
    assert at_cancel >= 5 and all(r.finished is None and r.generated for r in others), \
        "the other replies were not decoding when the cancel came"
    result = victim.result()
    assert result.reason == "cancelled"
    assert result.n_tokens <= at_cancel + 1, f"{result.n_tokens - at_cancel} tokens after the cancel"
    assert [r.result().reason for r in others] == ["length", "length"]
    assert [r.text() for r in others] == [solo[0], solo[2]]


def test_emoji_and_cjk_stream_intact(scheduler, chat_prompt):
    # The grammar forces characters that byte-level BPE splits over several tokens.
    target = "🍕🐉 日本語 café"
    params = greedy(max_new_tokens=40, grammar_string=f'root ::= "{target}"')
    request = scheduler.submit(chat_prompt("Say something."), params)
    deltas = [e.text for e in request.events() if isinstance(e, TextDelta)]
    assert "".join(deltas) == target
    assert all("\ufffd" not in d for d in deltas)
    assert request.result().n_tokens > len(deltas) - 1


def test_ban_eos_writes_to_the_limit(scheduler, chat_prompt):
    result = scheduler.submit(chat_prompt(FRANCE), greedy(max_new_tokens=30, ban_eos_token=True)).result()
    assert result.reason == "length" and result.n_tokens == 30


def test_concurrent_requests_match_their_solo_results(scheduler, chat_prompt):
    prompts = [chat_prompt(FRANCE), chat_prompt("Tell me the capital of Germany."),
               chat_prompt("Name three colours."), chat_prompt("Count from one to five.")]
    solo = [scheduler.submit(p, greedy(max_new_tokens=20)).text() for p in prompts]
    requests = [scheduler.submit(p, greedy(max_new_tokens=20)) for p in prompts]
    together = [r.text() for r in requests]
    assert together == solo
    assert "Berlin" in together[1]


def test_a_request_cancelled_before_it_starts_ends_and_another_runs_on(scheduler, chat_prompt):
    long_params = GenerationParams(seed=5, max_new_tokens=60, ban_eos_token=True)
    first = scheduler.submit(chat_prompt("Write a long story."), long_params)
    second = scheduler.submit(chat_prompt("Write a long poem."), long_params)
    first.cancel()
    assert first.result().reason == "cancelled"
    assert second.result().reason == "length" and second.result().n_tokens == 60


def test_prompt_longer_than_context_is_refused_clearly(scheduler):
    result = scheduler.submit("word " * 5000, greedy()).result()
    assert result.reason == "error"
    assert "context" in result.error and "2048" in result.error


@pytest.mark.parametrize("values, field", [
    ({"temperature": 9}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_k": -1}, "top_k"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"repetition_penalty": 0.5}, "repetition_penalty"),
    ({"min_p": "lots"}, "min_p"),
])
def test_out_of_range_parameters_are_refused_with_a_message(values, field):
    with pytest.raises(ParamError) as info:
        GenerationParams.from_dict(values)
    assert field in str(info.value)
    if isinstance(next(iter(values.values())), (int, float)):
        assert "between" in str(info.value)


def ended_at(request) -> float:
    finished = request.result()
    return request.submitted_at + finished.seconds


def test_a_bad_grammar_arriving_mid_reply_fails_alone_and_the_reply_goes_on(scheduler, chat_prompt):
    params = greedy(max_new_tokens=32, ban_eos_token=True)
    solo = scheduler.submit(chat_prompt(FRANCE), params).text()
    good = scheduler.submit(chat_prompt(FRANCE), params)
    for event in good.events(timeout=300):
        if isinstance(event, TextDelta) and event.n_tokens >= 3:
            break
    bad = scheduler.submit(chat_prompt(FRANCE), greedy(grammar_string="root ::= ("))
    assert bad.result().reason == "error" and "grammar" in bad.result().error
    assert ended_at(bad) < ended_at(good), "the good reply had finished before the bad one failed"
    assert good.result().reason == "length" and good.text() == solo


def test_all_samplers_together_and_each_mirostat_mode_give_a_reply(scheduler, chat_prompt):
    """Every setting at once builds one valid native chain. What each setting does to the
    distribution is checked one by one in tests/test_sampler_table.py."""
    params = GenerationParams(
        temperature=0.8, top_k=40, top_p=0.9, min_p=0.05, typical_p=0.95, top_n_sigma=2.0,
        xtc_probability=0.5, xtc_threshold=0.1, repetition_penalty=1.1, frequency_penalty=0.1,
        presence_penalty=0.1, dry_multiplier=0.8, dynamic_temperature=True, dynatemp_low=0.5,
        dynatemp_high=1.2, seed=9, max_new_tokens=20, logit_bias={"13": -5}, custom_token_bans="28")
    for mirostat in (0, 1, 2):
        result = scheduler.submit(chat_prompt(FRANCE), params.replace(mirostat_mode=mirostat)).result()
        assert result.ok and result.n_tokens > 0, result.error
