"""Sampler steps on one sequence's logits, written once for the torch backends.

Each function takes a 1-D float logits tensor (one score per vocabulary entry) and
returns it changed; removed candidates get -inf, so a later softmax renormalises over
what is left, the way llama.cpp's candidate list shrinks. Definitions follow llama.cpp
(src/llama-sampling.cpp) so a preset means the same on every loader.

SequenceSampler chains them in llama.cpp's default order:
    logit bias / bans -> penalties -> DRY -> top_n_sigma -> top_k -> typical -> top_p
    -> min_p -> XTC -> temperature (or dynamic temperature) -> draw
Mirostat (1 or 2) replaces the truncation steps (top_n_sigma .. XTC) and the draw; the
penalties and DRY still apply before it, as in the llama.cpp loader's chain. A grammar
(loaders/hf_grammar.py) comes before all of them: the chain only sees the tokens the
grammar allows, as with llama.cpp's grammar sampler.
"""
from __future__ import annotations

import math
import random

import torch

from modules.params import GenerationParams

NEG_INF = float("-inf")
DRY_MAX_MATCH = 50          # longer repeats get no bigger penalty (keeps base**n finite)
MIROSTAT_M = 100            # tokens Mirostat 1 uses to estimate the distribution's shape


# ---- bias and bans ---------------------------------------------------------------------
def apply_logit_bias(logits: torch.Tensor, bias: dict[int, float]) -> torch.Tensor:
    n = logits.shape[-1]
    for token, value in bias.items():
        if 0 <= token < n:
            logits[token] += value
    return logits


def ban_tokens(logits: torch.Tensor, tokens) -> torch.Tensor:
    n = logits.shape[-1]
    ids = [t for t in tokens if 0 <= t < n]
    if ids:
        logits[ids] = NEG_INF
    return logits


# ---- repetition ------------------------------------------------------------------------
def apply_penalties(logits: torch.Tensor, recent: list[int], repeat: float = 1.0,
                    frequency: float = 0.0, presence: float = 0.0) -> torch.Tensor:
    """llama.cpp's penalties sampler over the `recent` tokens: a token that occurred has
    its logit divided by `repeat` (multiplied when negative, so it always drops), then
    loses frequency * count + presence."""
    if not recent or (repeat == 1.0 and frequency == 0.0 and presence == 0.0):
        return logits
    n = logits.shape[-1]
    window = torch.tensor([t for t in recent if 0 <= t < n], dtype=torch.long)
    counts = torch.bincount(window, minlength=n).to(logits.dtype)
    seen = counts > 0
    if repeat != 1.0:
        hit = logits[seen]
        logits[seen] = torch.where(hit <= 0, hit * repeat, hit / repeat)
    if frequency != 0.0 or presence != 0.0:
        logits -= counts * frequency + seen.to(logits.dtype) * presence
    return logits


def apply_dry(logits: torch.Tensor, recent: list[int], multiplier: float, base: float,
              allowed_length: int, breakers: frozenset[int] = frozenset()) -> torch.Tensor:
    """DRY ("don't repeat yourself"): if the text ends with a run of tokens that occurred
    before, the token that followed that earlier run is penalised by
    multiplier * base ** (run_length - allowed_length). Runs stop at breaker tokens."""
    if multiplier <= 0 or len(recent) < 2:
        return logits
    last = recent[-1]
    if last in breakers:
        return logits
    n = logits.shape[-1]
    longest: dict[int, int] = {}     # next token -> longest run that preceded it
    end = len(recent) - 1
    for i in range(end):
        if recent[i] != last:
            continue
        following = recent[i + 1]
        if following in breakers:
            continue
        length = 1
        while length < DRY_MAX_MATCH:
            j = i - length
            if j < 0:
                break
            previous = recent[end - length]
            if recent[j] != previous or previous in breakers:
                break
            length += 1
        if length > longest.get(following, 0):
            longest[following] = length
    for token, length in longest.items():
        if length >= allowed_length and 0 <= token < n:
            logits[token] -= multiplier * base ** (length - allowed_length)
    return logits


# ---- truncation --------------------------------------------------------------------------
def apply_top_n_sigma(logits: torch.Tensor, n_sigma: float) -> torch.Tensor:
    """Keeps tokens whose logit is within n standard deviations (of the finite logits)
    of the best one."""
    if n_sigma <= 0:
        return logits
    finite = logits[torch.isfinite(logits)]
    if finite.numel() <= 1:
        return logits
    threshold = finite.max() - n_sigma * finite.std(unbiased=False)
    logits[logits < threshold] = NEG_INF
    return logits


def apply_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k).values[-1]
    logits[logits < kth] = NEG_INF
    return logits


def apply_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keeps the likeliest tokens up to and including the one where the running sum of
    probabilities reaches p."""
    if p >= 1.0:
        return logits
    ordered, order = torch.sort(logits, descending=True)
    cumulative = torch.softmax(ordered, dim=-1).cumsum(dim=-1)
    keep = int(torch.searchsorted(cumulative, torch.tensor([p], dtype=cumulative.dtype))) + 1
    keep = max(1, min(keep, logits.shape[-1]))
    logits[order[keep:]] = NEG_INF
    return logits


def apply_min_p(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Drops tokens with probability below min_p times the best one's
    (in logits: below max + log(min_p))."""
    if min_p <= 0:
        return logits
    threshold = logits.max() + math.log(min_p)
    logits[logits < threshold] = NEG_INF
    return logits


def apply_typical(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Locally typical sampling: orders tokens by how far their surprise (-log p) is from
    the distribution's entropy and keeps the closest until their mass exceeds p."""
    if p >= 1.0:
        return logits
    logp = torch.log_softmax(logits, dim=-1)
    probs = logp.exp()
    entropy = -(probs * logp).nansum()
    distance = (-logp - entropy).abs()
    _, order = torch.sort(distance)
    cumulative = probs[order].cumsum(dim=-1)
    above = torch.nonzero(cumulative > p)
    keep = int(above[0]) + 1 if above.numel() else logits.shape[-1]
    logits[order[keep:]] = NEG_INF
    return logits


def apply_xtc(logits: torch.Tensor, threshold: float, probability: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Exclude Top Choices: with the given probability, when two or more tokens are at
    least `threshold` likely, removes all of them but the least likely one."""
    if probability <= 0 or threshold > 0.5:
        return logits
    if float(torch.rand(1, generator=generator)) > probability:
        return logits
    probs = torch.softmax(logits, dim=-1)
    above = probs >= threshold
    if int(above.sum()) < 2:
        return logits
    logits[above & (probs > probs[above].min())] = NEG_INF
    return logits


# ---- temperature -------------------------------------------------------------------------
def keep_only_best(logits: torch.Tensor) -> torch.Tensor:
    best = int(torch.argmax(logits))
    value = logits[best].clone()
    logits.fill_(NEG_INF)
    logits[best] = value
    return logits


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    if temperature <= 0:
        return keep_only_best(logits)
    if temperature != 1.0:
        logits /= temperature
    return logits


def dynamic_temperature(logits: torch.Tensor, low: float, high: float, exponent: float) -> float:
    """llama.cpp's entropy-based temperature: low when the model is sure (low entropy),
    high when it hesitates, interpolated by (entropy / max entropy) ** exponent."""
    finite = torch.isfinite(logits)
    count = int(finite.sum())
    if count <= 1:
        return max(low, 1e-6)
    logp = torch.log_softmax(logits[finite], dim=-1)
    entropy = float(-(logp.exp() * logp).sum())
    normalized = min(1.0, max(0.0, entropy / math.log(count)))
    return low + (high - low) * normalized ** exponent


# ---- the chain -------------------------------------------------------------------------
class SequenceSampler:
    """One sequence's sampler: its settings, its own random generator (seeded, so the
    same seed gives the same text) and its Mirostat state."""

    def __init__(self, params: GenerationParams, eog_tokens: frozenset[int],
                 dry_breakers: frozenset[int] = frozenset(), constraint=None):
        self.params = params
        self.constraint = constraint       # a hf_grammar.TokenConstraint, or None
        seed = params.seed if params.seed >= 0 else random.SystemRandom().randrange(2**31)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.mirostat_mu = 2.0 * params.mirostat_tau
        self.dry_breakers = dry_breakers
        self.bans = sorted(set(params.banned_token_ids())
                           | (set(eog_tokens) if params.ban_eos_token else set()))
        p = params
        self.uses_history = (p.repetition_penalty != 1.0 or p.frequency_penalty != 0.0
                             or p.presence_penalty != 0.0 or p.dry_multiplier > 0)
        # Greedy with nothing that reshapes the scores: argmax of the raw logits.
        self.plain_greedy = p.is_greedy and not self.uses_history and not self.bans \
            and not p.logit_bias

    # -- steps shared by sample() and probabilities() --
    def _shape(self, logits: torch.Tensor, prompt: list[int], generated: list[int]) -> torch.Tensor:
        p = self.params
        if p.logit_bias:
            apply_logit_bias(logits, p.logit_bias)
        if self.bans:
            ban_tokens(logits, self.bans)
        if self.uses_history:
            recent = _recent(prompt, generated, p.repetition_penalty_range)
            apply_penalties(logits, recent, p.repetition_penalty, p.frequency_penalty,
                            p.presence_penalty)
            apply_dry(logits, recent, p.dry_multiplier, p.dry_base, p.dry_allowed_length,
                      self.dry_breakers)
        return logits

    def _truncate(self, logits: torch.Tensor, with_xtc: bool) -> torch.Tensor:
        p = self.params
        apply_top_n_sigma(logits, p.top_n_sigma)
        apply_top_k(logits, p.top_k)
        apply_typical(logits, p.typical_p)
        apply_top_p(logits, p.top_p)
        apply_min_p(logits, p.min_p)
        if with_xtc:
            apply_xtc(logits, p.xtc_threshold, p.xtc_probability, self.generator)
        return logits

    def _temperature(self, logits: torch.Tensor) -> torch.Tensor:
        p = self.params
        if p.dynamic_temperature:
            t = dynamic_temperature(logits, p.dynatemp_low, p.dynatemp_high, p.dynatemp_exponent)
            return apply_temperature(logits, t)
        return apply_temperature(logits, p.temperature)

    def sample(self, logits: torch.Tensor, prompt: list[int], generated: list[int]) -> int:
        """Picks the next token (one the grammar allows, which it then takes). `logits` is
        consumed (changed in place)."""
        if self.constraint is None:
            return self._draw(logits, prompt, generated)
        token = self._draw(self.constraint.restrict(logits), prompt, generated)
        self.constraint.accept(token)
        return token

    def next_position(self) -> None:
        """The backend has the logits of a new position (the grammar's mask is for the old one)."""
        if self.constraint is not None:
            self.constraint.next_position()

    def _draw(self, logits: torch.Tensor, prompt: list[int], generated: list[int]) -> int:
        if self.plain_greedy:
            return int(torch.argmax(logits))
        logits = self._shape(logits, prompt, generated)
        if self.params.is_greedy:
            return int(torch.argmax(logits))
        if self.params.mirostat_mode:
            return self._mirostat(self._temperature(logits))
        logits = self._temperature(self._truncate(logits, with_xtc=True))
        probs = torch.softmax(logits, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def probabilities(self, logits: torch.Tensor, prompt: list[int], generated: list[int]) -> torch.Tensor:
        """The distribution the next draw would use, without drawing (no random XTC cut,
        Mirostat's state left alone). Greedy settings show the shaped scores at T=1."""
        if self.constraint is not None:
            self.constraint.restrict(logits)
        logits = self._shape(logits, prompt, generated)
        if self.params.is_greedy:
            return torch.softmax(logits, dim=-1)
        if self.params.mirostat_mode:
            return self._mirostat_probs(self._temperature(logits))
        return torch.softmax(self._temperature(self._truncate(logits, with_xtc=False)), dim=-1)

    def _mirostat_probs(self, logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits, dim=-1)
        if self.params.mirostat_mode == 1:
            return _keep_top(probs, _mirostat_v1_keep(probs, self.mirostat_mu))
        return _mirostat_truncate(probs, self.mirostat_mu)

    def _mirostat(self, logits: torch.Tensor) -> int:
        """Mirostat: keep the tokens that fit the current surprise budget mu (2.0: tokens
        at most mu bits surprising; 1.0: the top k estimated from mu), draw, then move mu
        towards the target surprise tau by the observed error."""
        probs = self._mirostat_probs(logits)
        token = int(torch.multinomial(probs, 1, generator=self.generator))
        observed = -math.log2(max(float(probs[token]), 1e-30))
        self.mirostat_mu -= self.params.mirostat_eta * (observed - self.params.mirostat_tau)
        return token


def _mirostat_v1_keep(probs: torch.Tensor, mu: float, m: int = MIROSTAT_M) -> int:
    """Mirostat 1.0: how many top tokens to keep. Estimates the Zipf exponent s from the
    m likeliest tokens, then the k whose expected surprise matches mu (llama.cpp)."""
    top = torch.topk(probs, min(m, probs.shape[-1])).values.double()
    top = top[top > 0]
    if top.numel() < 2:
        return 1
    i = torch.arange(1, top.numel(), dtype=torch.float64)
    t = torch.log((i + 1) / i)
    b = torch.log(top[:-1] / top[1:])
    s_hat = float((t * b).sum() / (t * t).sum())
    epsilon = s_hat - 1
    if s_hat <= 0 or epsilon == 0:
        return probs.shape[-1]
    try:
        k = ((epsilon * 2.0 ** mu) / (1 - probs.shape[-1] ** -epsilon)) ** (1 / s_hat)
    except (OverflowError, ZeroDivisionError):
        return probs.shape[-1]
    if isinstance(k, complex) or math.isnan(k):
        return probs.shape[-1]
    return max(1, min(int(k), probs.shape[-1]))


def _keep_top(probs: torch.Tensor, k: int) -> torch.Tensor:
    kept = torch.zeros_like(probs)
    values, ids = torch.topk(probs, k)
    kept[ids] = values
    return kept / kept.sum()


def _mirostat_truncate(probs: torch.Tensor, mu: float) -> torch.Tensor:
    keep = -torch.log2(probs) <= mu
    if not bool(keep.any()):
        keep = probs == probs.max()
    kept = torch.where(keep, probs, torch.zeros_like(probs))
    return kept / kept.sum()


def _recent(prompt: list[int], generated: list[int], window: int) -> list[int]:
    """The last `window` tokens of prompt + reply (0: all of them)."""
    if window <= 0:
        return prompt + generated
    if len(generated) >= window:
        return generated[-window:]
    need = window - len(generated)
    return prompt[-need:] + generated
