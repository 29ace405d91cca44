"""One check per sampler setting: does the backend change what it draws from as the
setting's definition (llama.cpp's, src/llama-sampling.cpp) says?

Each check drives a real scheduler over a real backend. The distribution a request would
draw its next token from comes from the Probabilities path (`submit(..., candidates=N)`,
what FrontDoor.next_token_probabilities uses): Backend.top_candidates after the sampler
chain. The reference is the same prompt under neutral settings (temperature 1, nothing
cut), which is the plain softmax of the model's scores; the check computes from it what
the setting must do and compares. Settings the view cannot show (XTC's random cut, the
penalties that need a history, Mirostat's running state) are checked on generated tokens,
step by step, against the neutral distribution of each step.

Used by tests/test_sampler_table.py, which runs every check on every backend that
docs/samplers.md says honours the setting.
"""
from __future__ import annotations

import math

import torch

from loaders.logits_processors import apply_dry, _mirostat_v1_keep
from modules.params import GenerationParams
from modules.template_render import render_chat_template

NEUTRAL = GenerationParams(max_new_tokens=1)
NEUTRAL_NO_END = GenerationParams(max_new_tokens=1, ban_eos_token=True)   # beside greedy runs with ban_eos
EVERYTHING = 1 << 30                  # candidates wanted: the whole vocabulary
FRANCE = "Tell me the capital of France."
POEM = "Write a short poem about the sea."
# A prompt the small model answers with the same few tokens over and over: repetition
# settings have something to act on within a few tokens.
REPEATS = "Repeat after me ten times: the cat sat on the mat, the cat sat on the mat,"
CATS = "Write the word cat ten times."


class Probe:
    """A scheduler and its backend, with the few questions the checks ask."""

    def __init__(self, scheduler, name: str):
        self.scheduler = scheduler
        self.name = name                          # "llama.cpp", "Transformers", "GPTQ"
        # How far a score recomputed from a fresh prompt pass may sit from the one the
        # reply was drawn with: float32 agrees closely; GPTQ computes in bfloat16 (8 bits
        # of mantissa), where scores of 5-20 differ by a tenth or so between the two passes.
        self.score_tolerance = 0.25 if name == "GPTQ" else 1e-3

    @property
    def backend(self):
        return self.scheduler.backend

    def chat(self, text: str) -> str:
        return render_chat_template(self.backend.info.chat_template,
                                    [{"role": "user", "content": text}], add_generation_prompt=True)

    def tokens(self, text: str) -> list[int]:
        return self.backend.tokenize(self.chat(text), add_bos=self.backend.info.add_bos_default)

    def dist(self, prompt, params: GenerationParams = NEUTRAL) -> dict[int, float]:
        """token -> probability of the next draw; tokens the chain removed are absent."""
        request = self.scheduler.submit(prompt, params, candidates=EVERYTHING)
        finished = request.result()
        assert finished.reason == "stop", finished.error
        return {t: p for t, p in request.candidates if p > 0}

    def generate(self, prompt, params: GenerationParams):
        request = self.scheduler.submit(prompt, params)
        finished = request.result()
        assert finished.ok, finished.error
        return finished, list(request.prompt_tokens), list(request.generated)

    def penalty_history(self, prompt: list[int], generated: list[int], window: int) -> list[int]:
        """The tokens the penalties and DRY look back on. llama.cpp's chain sees only what it
        drew (prompt tokens are never accepted into it); ours sees prompt and reply."""
        if self.name == "llama.cpp":
            history = list(generated)
        else:
            history = list(prompt) + list(generated)
        return history[-window:] if window > 0 else history


# ---- helpers ------------------------------------------------------------------------------
def ranked(dist: dict[int, float]) -> list[tuple[int, float]]:
    return sorted(dist.items(), key=lambda item: -item[1])


def renormalised(dist: dict[int, float], kept) -> dict[int, float]:
    total = sum(dist[t] for t in kept)
    return {t: dist[t] / total for t in kept}


def assert_same_distribution(actual: dict[int, float], expected: dict[int, float], tol=2e-3):
    assert set(actual) == set(expected), (
        f"{len(actual)} candidates kept, {len(expected)} expected; "
        f"extra {sorted(set(actual) - set(expected))[:5]}, missing {sorted(set(expected) - set(actual))[:5]}")
    worst = max(abs(actual[t] - expected[t]) for t in expected)
    assert worst < tol, f"probabilities differ by up to {worst:.4f}"


def assert_kept_set(actual: dict[int, float], neutral: dict[int, float], expected_kept: list[int],
                    slack: list[int] = ()):
    """The chain kept `expected_kept` (tokens in `slack` sit on the cut-off, within float
    rounding, and may go either way), renormalised."""
    kept = set(actual)
    core = set(expected_kept) - set(slack)
    assert core <= kept and kept <= set(expected_kept) | set(slack), (
        f"kept {len(kept)} tokens, expected {len(expected_kept)} (+{len(slack)} on the edge)")
    assert_same_distribution(actual, renormalised(neutral, kept))


def near(values, target, tol=1e-4):
    return [i for i, v in enumerate(values) if abs(v - target) <= tol]


def neutral_argmax_with(probe: Probe, prompt, generated, step, adjust) -> None:
    """Greedy decoding with a history-dependent setting: token `step` must be the argmax
    of the neutral log-probabilities at that step after `adjust(logp, history)`."""
    logp = torch.full((probe.backend.vocab_size,), -math.inf, dtype=torch.float64)
    for token, p in probe.dist(list(prompt) + list(generated[:step]), NEUTRAL_NO_END).items():
        logp[token] = math.log(p)
    adjusted = adjust(logp, generated[:step])
    chosen = generated[step]
    best = float(adjusted.max())
    assert float(adjusted[chosen]) >= best - probe.score_tolerance, (
        f"step {step}: drew {probe.backend.token_text(chosen)!r} (score {float(adjusted[chosen]):.4f}) "
        f"but {probe.backend.token_text(int(adjusted.argmax()))!r} scores {best:.4f}")


# ---- the checks: one per PARAM_SPECS field ---------------------------------------------------------
def check_max_new_tokens(probe: Probe):
    finished, _, _ = probe.generate(probe.chat(FRANCE), GenerationParams(
        do_sample=False, max_new_tokens=7, ban_eos_token=True))
    assert finished.reason == "length" and finished.n_tokens == 7


def check_custom_stopping_strings(probe: Probe):
    plain, _, _ = probe.generate(probe.chat(FRANCE), GenerationParams(do_sample=False, max_new_tokens=24))
    assert "Paris" in plain.text
    stopped, _, _ = probe.generate(probe.chat(FRANCE), GenerationParams(
        do_sample=False, max_new_tokens=24, custom_stopping_strings=("Paris",)))
    assert stopped.reason == "stop" and "Paris" not in stopped.text
    assert plain.text.startswith(stopped.text.rstrip()) and len(stopped.text) < len(plain.text)


def check_ban_eos_token(probe: Probe):
    ends = [t for t in range(probe.backend.vocab_size) if probe.backend.is_end_of_generation(t)]
    # After "Paris." the model's likeliest next token ends its turn; banned, none may remain.
    plain, prompt, generated = probe.generate(probe.chat(FRANCE), GenerationParams(do_sample=False, max_new_tokens=40))
    assert plain.reason == "stop"
    at_end = list(prompt) + list(generated)
    assert any(t in probe.dist(at_end) for t in ends)
    banned = probe.dist(at_end, GenerationParams(ban_eos_token=True))
    assert not any(t in banned for t in ends)
    finished, _, _ = probe.generate(probe.chat(FRANCE), GenerationParams(
        do_sample=False, max_new_tokens=40, ban_eos_token=True))
    assert finished.reason == "length" and finished.n_tokens == 40


def check_temperature(probe: Probe, temperature: float = 0.5):
    prompt = probe.chat(POEM)
    neutral = probe.dist(prompt)
    scaled = probe.dist(prompt, GenerationParams(temperature=temperature))
    expected = {t: p ** (1 / temperature) for t, p in neutral.items()}
    total = sum(expected.values())
    top = [t for t, _ in ranked(neutral)[:20]]
    assert_same_distribution({t: scaled[t] for t in top}, {t: expected[t] / total for t in top})


def check_do_sample(probe: Probe):
    prompt = probe.chat(POEM)
    neutral = ranked(probe.dist(prompt))
    texts = set()
    for seed in (1, 2, 3):
        finished, _, generated = probe.generate(prompt, GenerationParams(
            do_sample=False, temperature=1.5, seed=seed, max_new_tokens=6))
        assert generated[0] == neutral[0][0], "greedy did not take the likeliest token"
        texts.add(finished.text)
    assert len(texts) == 1, "greedy decoding depended on the seed"


def check_seed(probe: Probe):
    prompt = probe.chat(POEM)
    params = GenerationParams(temperature=1.2, seed=42, max_new_tokens=12)
    first = probe.generate(prompt, params)[0].text
    assert probe.generate(prompt, params)[0].text == first
    others = {probe.generate(prompt, params.replace(seed=s))[0].text for s in (1, 2, 3)}
    assert others - {first}, "different seeds all gave the same text"


def check_dynamic_temperature(probe: Probe, low=0.5, high=1.5, exponent=1.0):
    """llama.cpp's temp_ext: T = low + (high - low) * (H / log n) ** exponent, with H the
    entropy of the candidates (all of them here) and n their number."""
    prompt = probe.chat(POEM)
    neutral = probe.dist(prompt)
    entropy = -sum(p * math.log(p) for p in neutral.values())
    expected_t = low + (high - low) * (entropy / math.log(probe.backend.vocab_size)) ** exponent
    scaled = probe.dist(prompt, GenerationParams(dynamic_temperature=True, dynatemp_low=low,
                                                 dynatemp_high=high, dynatemp_exponent=exponent))
    (a, pa), (b, pb) = ranked(neutral)[:2]
    measured_t = math.log(pa / pb) / math.log(scaled[a] / scaled[b])
    assert measured_t == pytest_approx(expected_t, 0.01), (measured_t, expected_t)


def check_dynatemp_low(probe: Probe):
    check_dynamic_temperature(probe, low=0.2, high=1.5)


def check_dynatemp_high(probe: Probe):
    check_dynamic_temperature(probe, low=0.5, high=3.0)


def check_dynatemp_exponent(probe: Probe):
    check_dynamic_temperature(probe, low=0.5, high=1.5, exponent=0.3)


def check_top_k(probe: Probe, k: int = 5):
    prompt = probe.chat(POEM)
    neutral = probe.dist(prompt)
    actual = probe.dist(prompt, GenerationParams(top_k=k))
    assert_kept_set(actual, neutral, [t for t, _ in ranked(neutral)[:k]])


def check_top_p(probe: Probe, p: float = 0.8):
    """Keeps the likeliest tokens up to and including the one where their sum reaches p."""
    prompt = probe.chat(POEM)
    neutral = probe.dist(prompt)
    order = ranked(neutral)
    running, keep = 0.0, []
    for token, probability in order:
        keep.append(token)
        running += probability
        if running >= p:
            break
    edge = [keep[-1]] if abs(running - p) < 1e-4 or abs(running - probability - p) < 1e-4 else []
    actual = probe.dist(prompt, GenerationParams(top_p=p))
    assert_kept_set(actual, neutral, keep + [order[len(keep)][0]] if edge else keep, slack=edge)


def check_min_p(probe: Probe, min_p: float = 0.05):
    prompt = probe.chat(POEM)
    neutral = probe.dist(prompt)
    best = max(neutral.values())
    keep = [t for t, p in neutral.items() if p >= min_p * best]
    edge = [t for t, p in neutral.items() if abs(p / best - min_p) < 1e-4]
    assert_kept_set(probe.dist(prompt, GenerationParams(min_p=min_p)), neutral, keep + edge, slack=edge)


def check_typical_p(probe: Probe, p: float = 0.5):
    """Locally typical: tokens ordered by |surprise - entropy|, kept until their mass exceeds p."""
    prompt = probe.chat(POEM)
    neutral = probe.dist(prompt)
    entropy = -sum(q * math.log(q) for q in neutral.values())
    order = sorted(neutral, key=lambda t: abs(-math.log(neutral[t]) - entropy))
    running, keep = 0.0, []
    for token in order:
        keep.append(token)
        running += neutral[token]
        if running > p:
            break
    assert_kept_set(probe.dist(prompt, GenerationParams(typical_p=p)), neutral, keep)


def check_top_n_sigma(probe: Probe, n: float = 2.0):
    """Keeps tokens whose score is within n standard deviations (over the whole
    vocabulary) of the best; log-probabilities differ from scores by one constant."""
    prompt = probe.chat(POEM)
    neutral = probe.dist(prompt)
    scores = torch.tensor([math.log(p) for p in neutral.values()], dtype=torch.float64)
    threshold = float(scores.max() - n * scores.std(unbiased=False))
    keep = [t for t, p in neutral.items() if math.log(p) >= threshold]
    edge = [t for t, p in neutral.items() if abs(math.log(p) - threshold) < 1e-3]
    assert_kept_set(probe.dist(prompt, GenerationParams(top_n_sigma=n)), neutral, keep + edge, slack=edge)


def _xtc_removed(neutral: dict[int, float], threshold: float) -> set[int]:
    above = [t for t, p in ranked(neutral) if p >= threshold]
    return set(above[:-1]) if len(above) >= 2 else set()


def check_xtc(probe: Probe, threshold: float = 0.1, probability: float = 1.0):
    """XTC is a random cut, so the view does not show it: the first drawn token is checked
    over several seeds. With probability 1 every token at least `threshold` likely but the
    least likely of them is removed."""
    prompt = probe.chat(POEM)
    neutral = probe.dist(prompt)
    removed = _xtc_removed(neutral, threshold)
    assert removed, "the prompt gives XTC nothing to remove at this threshold"
    drawn = [probe.generate(prompt, GenerationParams(
        xtc_probability=probability, xtc_threshold=threshold, seed=seed, max_new_tokens=1))[2][0]
        for seed in range(8)]
    assert not removed & set(drawn), [probe.backend.token_text(t) for t in drawn]
    plain = [probe.generate(prompt, GenerationParams(seed=seed, max_new_tokens=1))[2][0] for seed in range(8)]
    assert removed & set(plain), "without XTC the top tokens should be drawn"


def check_xtc_probability(probe: Probe):
    check_xtc(probe, threshold=0.1, probability=1.0)


def check_xtc_threshold(probe: Probe):
    """A threshold between the second and third likeliest tokens: only the likeliest goes."""
    second, third = [p for _, p in ranked(probe.dist(probe.chat(POEM)))[1:3]]
    check_xtc(probe, threshold=min(0.5, (second + third) / 2), probability=1.0)


def _greedy_with(probe: Probe, changes: dict, steps: int = 10, baseline: dict | None = None,
                 text: str = REPEATS):
    """Greedy tokens on the repeating prompt with these settings, and with the baseline
    (the defaults unless given): they must differ, or the check proves nothing."""
    base = GenerationParams(do_sample=False, max_new_tokens=steps, ban_eos_token=True)
    _, prompt, with_setting = probe.generate(probe.chat(text), base.replace(**changes))
    _, _, without = probe.generate(probe.chat(text), base.replace(**(baseline or {})))
    assert with_setting != without, f"{changes} changed nothing in {steps} greedy tokens"
    return prompt, with_setting


def _check_additive_penalty(probe: Probe, frequency: float, presence: float, window: int = 1024,
                            baseline: dict | None = None):
    """Frequency and presence penalties subtract from the score of tokens in the history,
    so greedy picks the argmax of log p - frequency * count - presence * seen."""
    prompt, generated = _greedy_with(probe, {"frequency_penalty": frequency, "presence_penalty": presence,
                                             "repetition_penalty_range": window},
                                     baseline=baseline, text=CATS)

    def adjust(logp, so_far):
        history = probe.penalty_history(prompt, so_far, window)
        for token in set(history):
            logp[token] -= frequency * history.count(token) + presence
        return logp
    for step in range(len(generated)):
        neutral_argmax_with(probe, prompt, generated, step, adjust)


def check_frequency_penalty(probe: Probe):
    _check_additive_penalty(probe, frequency=1.0, presence=0.0)


def check_presence_penalty(probe: Probe):
    _check_additive_penalty(probe, frequency=0.0, presence=1.0)


def check_repetition_penalty_range(probe: Probe):
    """Only the last 3 tokens count: " cat" may follow " The" again (7 tokens after the
    first), which the same penalty over the whole history prevents."""
    check_repetition_penalty(probe, window=3,
                             baseline={"repetition_penalty": 1.8, "repetition_penalty_range": 0})


def check_repetition_penalty(probe: Probe, penalty: float = 1.8, window: int = 0, baseline=None):
    """Divides (or for negative scores multiplies) the score of tokens in the history: it
    only ever lowers them, and leaves every other token's score alone. Scores are known
    only up to a constant here, so the check is what follows for greedy: an unseen token
    drawn is the likeliest unseen one; a seen token drawn beats every unseen one."""
    prompt, generated = _greedy_with(probe, {"repetition_penalty": penalty,
                                             "repetition_penalty_range": window}, baseline=baseline)
    for step, chosen in enumerate(generated):
        history = set(probe.penalty_history(prompt, generated[:step], window))
        neutral = probe.dist(list(prompt) + generated[:step], NEUTRAL_NO_END)
        unseen = max((p for t, p in neutral.items() if t not in history), default=0.0)
        assert neutral.get(chosen, 0.0) >= unseen - 1e-6, f"step {step}: a likelier unseen token was passed over"


def _check_dry(probe: Probe, multiplier=3.0, base=1.75, allowed=2, breakers='"\\n", ":", "\\"", "*"',
               steps=14):
    prompt, generated = _greedy_with(probe, {"dry_multiplier": multiplier, "dry_base": base,
                                             "dry_allowed_length": allowed,
                                             "dry_sequence_breakers": breakers}, steps=steps)
    words = GenerationParams(dry_sequence_breakers=breakers).dry_breakers()

    def adjust(logp, so_far):
        history = probe.penalty_history(prompt, so_far, 1024)
        breaking = frozenset(t for t in set(history)
                             if any(w in probe.backend.token_text(t) for w in words))
        return apply_dry(logp, history, multiplier, base, allowed, breaking)
    for step in range(len(generated)):
        neutral_argmax_with(probe, prompt, generated, step, adjust)


def check_dry_multiplier(probe: Probe):
    _check_dry(probe)


def check_dry_base(probe: Probe):
    _check_dry(probe, multiplier=0.5, base=3.0)


def check_dry_allowed_length(probe: Probe):
    _check_dry(probe, multiplier=5.0, allowed=3, steps=18)


def check_dry_sequence_breakers(probe: Probe):
    # A comma breaks every run of "the cat sat on the mat," so DRY has less to act on.
    _check_dry(probe, breakers='","')


def check_mirostat_mode(probe: Probe):
    """Mirostat 2 keeps the tokens at most mu = 2 * tau bits surprising (before its first
    draw); Mirostat 1 keeps the top k estimated from mu and the Zipf slope of the top 100."""
    prompt = probe.chat(POEM)
    neutral = probe.dist(prompt)
    check_mirostat_tau(probe, neutral=neutral)
    v1 = probe.dist(prompt, GenerationParams(mirostat_mode=1, mirostat_tau=3.0))
    probs = torch.tensor([p for _, p in ranked(neutral)], dtype=torch.float64)
    k = _mirostat_v1_keep(probs, 6.0)
    assert abs(len(v1) - k) <= max(1, k // 20), (len(v1), k)
    assert_kept_set(v1, neutral, [t for t, _ in ranked(neutral)[:len(v1)]])


def check_mirostat_tau(probe: Probe, neutral=None, tau: float = 2.0):
    prompt = probe.chat(POEM)
    neutral = neutral or probe.dist(prompt)
    keep = [t for t, p in neutral.items() if -math.log2(p) <= 2 * tau]
    edge = [t for t, p in neutral.items() if abs(-math.log2(p) - 2 * tau) < 1e-4]
    actual = probe.dist(prompt, GenerationParams(mirostat_mode=2, mirostat_tau=tau))
    assert_kept_set(actual, neutral, keep + edge, slack=edge)


def check_mirostat_eta(probe: Probe, tau: float = 1.5):
    """With eta 0, mu never moves from 2 * tau: every drawn token, at every step, is at most
    that surprising (or the likeliest one, kept when none is). With eta 1 mu moves, and
    tokens beyond the first budget get drawn."""
    prompt = probe.chat(POEM)

    def beyond_budget(eta) -> int:
        count = 0
        for seed in (1, 2):
            _, tokens, generated = probe.generate(prompt, GenerationParams(
                mirostat_mode=2, mirostat_tau=tau, mirostat_eta=eta, seed=seed, max_new_tokens=8))
            for step, token in enumerate(generated):
                neutral = probe.dist(list(tokens) + generated[:step])
                p = neutral.get(token, 0.0)
                if p < 2 ** (-2 * tau) - 1e-6 and p < max(neutral.values()):
                    count += 1
        return count
    assert beyond_budget(0.0) == 0
    assert beyond_budget(1.0) > 0, "mu did not move with eta 1"


def check_add_bos_token(probe: Probe):
    """The BOS token goes first only when asked and when the model's tokenizer adds one."""
    info = probe.backend.info
    without = probe.generate(probe.chat("Hi"), GenerationParams(add_bos_token=False, max_new_tokens=1))[1]
    with_bos = probe.generate(probe.chat("Hi"), GenerationParams(add_bos_token=True, max_new_tokens=1))[1]
    if info.add_bos_default:
        assert with_bos[1:] == without and with_bos[0] != without[0]
    else:
        assert with_bos == without


def check_skip_special_tokens(probe: Probe):
    """<|im_start|> (id 1), pushed to the top: in the text only when specials are not skipped."""
    forced = GenerationParams(do_sample=False, max_new_tokens=3, ban_eos_token=True,
                              logit_bias={1: 100.0})
    shown = probe.generate(probe.chat(FRANCE), forced.replace(skip_special_tokens=False))[0].text
    hidden = probe.generate(probe.chat(FRANCE), forced.replace(skip_special_tokens=True))[0].text
    assert shown == "<|im_start|>" * 3 and hidden == ""


def check_logit_bias(probe: Probe, bias: float = 2.0):
    prompt = probe.chat(POEM)
    neutral = probe.dist(prompt)
    (a, pa), (b, pb) = ranked(neutral)[2:4]
    biased = probe.dist(prompt, GenerationParams(logit_bias={b: bias}))
    expected = {t: p * (math.exp(bias) if t == b else 1.0) for t, p in neutral.items()}
    total = sum(expected.values())
    assert_same_distribution(biased, {t: p / total for t, p in expected.items()})
    assert math.log(biased[b] / biased[a]) == pytest_approx(math.log(pb / pa) + bias, 0.01)


def check_custom_token_bans(probe: Probe):
    prompt = probe.chat(POEM)
    neutral = probe.dist(prompt)
    top = [t for t, _ in ranked(neutral)[:2]]
    banned = probe.dist(prompt, GenerationParams(custom_token_bans=",".join(map(str, top))))
    assert_same_distribution(banned, renormalised(neutral, set(neutral) - set(top)))


def check_grammar_string(probe: Probe):
    grammar = 'root ::= ("Yes" | "No") "."'
    allowed = probe.dist(probe.chat(FRANCE), GenerationParams(grammar_string=grammar))
    texts = {probe.backend.token_text(t) for t in allowed}
    assert texts and all("Yes".startswith(t) or "No".startswith(t) for t in texts), texts
    finished, _, _ = probe.generate(probe.chat(FRANCE), GenerationParams(
        grammar_string=grammar, seed=3, max_new_tokens=10))
    assert finished.text in ("Yes.", "No.")


# A value for each field that is not its default: what a user would set, for the check of
# the warning a backend gives when it cannot honour the field.
NON_DEFAULT = {
    "max_new_tokens": 7, "custom_stopping_strings": ["Paris"], "ban_eos_token": True,
    "temperature": 0.5, "do_sample": False, "seed": 42, "dynamic_temperature": True,
    "dynatemp_low": 0.2, "dynatemp_high": 3.0, "dynatemp_exponent": 0.3, "top_k": 5,
    "top_p": 0.8, "min_p": 0.05, "typical_p": 0.5, "top_n_sigma": 2.0, "xtc_threshold": 0.3,
    "xtc_probability": 1.0, "repetition_penalty": 1.8, "repetition_penalty_range": 3,
    "frequency_penalty": 1.5, "presence_penalty": 2.0, "dry_multiplier": 3.0, "dry_base": 3.0,
    "dry_allowed_length": 4, "dry_sequence_breakers": '","', "mirostat_mode": 2,
    "mirostat_tau": 2.0, "mirostat_eta": 0.0, "add_bos_token": False,
    "skip_special_tokens": False, "logit_bias": {13: 2.0}, "custom_token_bans": "13",
    "grammar_string": 'root ::= "Yes" | "No"',
}

CHECKS = {name[len("check_"):]: function for name, function in list(globals().items())
          if name.startswith("check_") and callable(function)}


def pytest_approx(value, rel):
    import pytest
    return pytest.approx(value, rel=rel)
