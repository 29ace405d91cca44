"""Each sampler step changes a distribution the way its definition (llama.cpp's) says."""
from __future__ import annotations

import math

import pytest
import torch

from loaders import logits_processors as lp
from modules.params import GenerationParams


def logits_of(probs) -> torch.Tensor:
    return torch.tensor(probs, dtype=torch.float32).log()


def kept(logits: torch.Tensor) -> list[int]:
    return torch.nonzero(torch.isfinite(logits)).flatten().tolist()


PROBS = [0.4, 0.25, 0.15, 0.1, 0.06, 0.04]


def test_top_k_keeps_the_k_likeliest():
    assert kept(lp.apply_top_k(logits_of(PROBS), 2)) == [0, 1]
    assert kept(lp.apply_top_k(logits_of(PROBS), 0)) == list(range(6))


def test_top_p_keeps_up_to_the_token_that_reaches_p():
    # 0.4 + 0.25 = 0.65 < 0.7, + 0.15 = 0.8 >= 0.7: three tokens.
    assert kept(lp.apply_top_p(logits_of(PROBS), 0.7)) == [0, 1, 2]
    assert kept(lp.apply_top_p(logits_of(PROBS), 0.1)) == [0]
    assert kept(lp.apply_top_p(logits_of(PROBS), 1.0)) == list(range(6))


def test_min_p_is_relative_to_the_best_token():
    # 0.25 * 0.4 = 0.1: tokens of at least 0.1 stay.
    assert kept(lp.apply_min_p(logits_of(PROBS), 0.25)) == [0, 1, 2, 3]


def test_typical_keeps_tokens_nearest_the_entropy():
    probs = torch.tensor(PROBS)
    entropy = float(-(probs * probs.log()).sum())
    distance = (-probs.log() - entropy).abs()
    closest = int(torch.argmin(distance))
    out = kept(lp.apply_typical(logits_of(PROBS), 0.2))
    assert closest in out and len(out) < 6
    assert out == sorted(torch.argsort(distance)[: len(out)].tolist())


def test_top_n_sigma_keeps_scores_near_the_max():
    logits = torch.tensor([10.0, 9.5, 2.0, 1.0, 0.0, -1.0])
    std = float(logits.std(unbiased=False))
    out = kept(lp.apply_top_n_sigma(logits.clone(), 0.5))
    assert out == [i for i, v in enumerate(logits.tolist()) if v >= 10.0 - 0.5 * std]
    assert out == [0, 1]


def test_xtc_removes_top_choices_but_the_least_likely_of_them():
    out = lp.apply_xtc(logits_of(PROBS), threshold=0.15, probability=1.0)
    assert kept(out) == [2, 3, 4, 5]      # 0.4 and 0.25 go, 0.15 (the last above) stays
    untouched = lp.apply_xtc(logits_of(PROBS), threshold=0.15, probability=0.0)
    assert kept(untouched) == list(range(6))
    one_above = lp.apply_xtc(logits_of(PROBS), threshold=0.3, probability=1.0)
    assert kept(one_above) == list(range(6))


def test_temperature_sharpens_and_flattens():
    base = torch.softmax(logits_of(PROBS), -1)
    sharp = torch.softmax(lp.apply_temperature(logits_of(PROBS), 0.5), -1)
    flat = torch.softmax(lp.apply_temperature(logits_of(PROBS), 2.0), -1)
    assert sharp[0] > base[0] > flat[0]
    assert kept(lp.apply_temperature(logits_of(PROBS), 0.0)) == [0]


def test_dynamic_temperature_follows_entropy():
    sure = logits_of([0.97, 0.01, 0.01, 0.01])
    unsure = logits_of([0.25, 0.25, 0.25, 0.25])
    assert lp.dynamic_temperature(sure, 0.5, 1.5, 1.0) < 0.7
    assert lp.dynamic_temperature(unsure, 0.5, 1.5, 1.0) == pytest.approx(1.5)


def test_repetition_penalty_lowers_seen_tokens_whatever_their_sign():
    logits = torch.tensor([2.0, -2.0, 2.0, -2.0])
    out = lp.apply_penalties(logits, [0, 1], repeat=2.0)
    assert out.tolist() == [1.0, -4.0, 2.0, -2.0]


def test_frequency_and_presence_penalties_count_occurrences():
    logits = torch.zeros(4)
    out = lp.apply_penalties(logits, [0, 0, 0, 1], frequency=0.5, presence=1.0)
    assert out.tolist() == [-2.5, -1.5, 0.0, 0.0]


def test_penalty_range_looks_only_at_recent_tokens():
    assert lp._recent([5, 6, 7], [8, 9], 3) == [7, 8, 9]
    assert lp._recent([5, 6, 7], [8, 9], 0) == [5, 6, 7, 8, 9]


def test_dry_penalises_continuing_a_repeat():
    # "1 2 3 4 ... 1 2 3": continuing with 4 would repeat a run of length 3.
    recent = [1, 2, 3, 4, 9, 1, 2, 3]
    out = lp.apply_dry(torch.zeros(10), recent, multiplier=0.8, base=1.75, allowed_length=2)
    assert out[4] == pytest.approx(-0.8 * 1.75 ** (3 - 2))
    assert out[[0, 1, 2, 3, 5, 6, 7, 8, 9]].abs().sum() == 0
    # A breaker inside the run shortens it below the allowed length: no penalty.
    short = lp.apply_dry(torch.zeros(10), recent, 0.8, 1.75, 2, breakers=frozenset({2}))
    assert short.abs().sum() == 0


def test_logit_bias_and_bans():
    out = lp.apply_logit_bias(torch.zeros(4), {1: 5.0, 99: 1.0})
    assert out.tolist() == [0.0, 5.0, 0.0, 0.0]
    assert kept(lp.ban_tokens(torch.zeros(4), [0, 3, 99])) == [1, 2]


def test_mirostat_drops_surprising_tokens_and_adapts():
    probs = torch.tensor(PROBS)
    truncated = lp._mirostat_truncate(probs, mu=2.0)     # keeps -log2 p <= 2 bits: p >= 0.25
    assert torch.nonzero(truncated).flatten().tolist() == [0, 1]
    assert float(truncated.sum()) == pytest.approx(1.0)
    sampler = lp.SequenceSampler(GenerationParams(mirostat_mode=2, mirostat_tau=3.0, seed=1), frozenset())
    assert sampler.mirostat_mu == 6.0
    sampler.sample(logits_of(PROBS), [], [])
    assert sampler.mirostat_mu != 6.0


def test_chain_seeded_sampling_repeats_and_ban_eos_holds():
    params = GenerationParams(temperature=1.0, seed=7)
    draws = [[lp.SequenceSampler(params, frozenset()).sample(logits_of(PROBS), [], [])
              for _ in range(1)] for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    sampler = lp.SequenceSampler(params, frozenset())
    many = {sampler.sample(logits_of(PROBS), [], []) for _ in range(50)}
    assert len(many) > 1
    banned = lp.SequenceSampler(params.replace(ban_eos_token=True), frozenset({0}))
    assert all(banned.sample(logits_of(PROBS), [], []) != 0 for _ in range(50))
    greedy = lp.SequenceSampler(GenerationParams(do_sample=False, ban_eos_token=True), frozenset({0}))
    assert greedy.sample(logits_of(PROBS), [], []) == 1


def test_probabilities_view_matches_the_truncation():
    params = GenerationParams(top_k=2, temperature=1.0)
    probs = lp.SequenceSampler(params, frozenset()).probabilities(logits_of(PROBS), [], [])
    assert probs[0] == pytest.approx(0.4 / 0.65) and probs[1] == pytest.approx(0.25 / 0.65)
    assert float(probs[2:].sum()) == 0


def test_no_step_changes_the_input_when_off():
    params = GenerationParams(do_sample=True)
    sampler = lp.SequenceSampler(params, frozenset())
    probs = sampler.probabilities(logits_of(PROBS), [0, 1, 2], [3])
    assert probs.tolist() == pytest.approx(PROBS)
    assert math.isclose(float(probs.sum()), 1.0, rel_tol=1e-5)


def test_mirostat_1_keeps_fewer_tokens_for_a_lower_surprise_budget():
    zipf = -1.2 * torch.log(torch.arange(1, 1001, dtype=torch.float32))   # p_i ~ 1 / i**1.2
    probs = torch.softmax(zipf, -1)
    low = lp._mirostat_v1_keep(probs, mu=2.0)
    high = lp._mirostat_v1_keep(probs, mu=8.0)
    # k = (eps * 2**mu / (1 - N**-eps)) ** (1 / s) with s = 1.2, eps = 0.2, N = 1000
    assert high == int((0.2 * 2 ** 8 / (1 - 1000 ** -0.2)) ** (1 / 1.2))
    assert 1 <= low < high
    sampler = lp.SequenceSampler(GenerationParams(mirostat_mode=1, mirostat_tau=2.0, seed=3), frozenset())
    shown = sampler.probabilities(zipf.clone(), [], [])
    assert int((shown > 0).sum()) == lp._mirostat_v1_keep(probs, 4.0)
    sampler.sample(zipf.clone(), [], [])
    assert sampler.mirostat_mu != 4.0
