"""GenerationParams -> a native llama.cpp sampler chain, one per sequence.

Every sampler runs inside llama.cpp (llama_sampler_init_*), in the order of llama.cpp's
own default chain: bias and bans, grammar, penalties, DRY, then the truncation samplers
(top-n-sigma, top-k, typical, top-p, min-p, XTC), temperature, and the final draw.
Mirostat replaces the truncation samplers, as it does in llama.cpp.
"""
from __future__ import annotations

import ctypes
import random

import llama_cpp as ll

from modules.params import SPECS_BY_NAME, GenerationParams

BANNED = float("-inf")
# How far back the penalties and DRY look when they should look at everything. llama.cpp's
# samplers read a range of 0 or -1 as "switched off" (its own -1 = context size is resolved
# by its common code, which this path does not use), so "all" is the largest range a preset
# may ask for.
ALL_TOKENS = int(SPECS_BY_NAME["repetition_penalty_range"].maximum)


class SamplerChain:
    """Owns a llama_sampler chain; free() must be called when the sequence ends."""

    def __init__(self, vocab, n_vocab: int, params: GenerationParams, end_tokens: list[int]):
        self.seed = params.seed if params.seed >= 0 else random.getrandbits(31)
        self.ptr = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        self._keepalive = []        # ctypes buffers the chain points into
        try:
            self._build(vocab, n_vocab, params, end_tokens)
        except Exception:
            self.free()
            raise

    def _add(self, sampler) -> None:
        if not sampler:
            raise ValueError("llama.cpp refused a sampler setting.")
        ll.llama_sampler_chain_add(self.ptr, sampler)

    def _build(self, vocab, n_vocab: int, p: GenerationParams, end_tokens: list[int]) -> None:
        bias = {int(t): float(b) for t, b in p.logit_bias.items()}
        for token in p.banned_token_ids():
            bias[token] = BANNED
        if p.ban_eos_token:
            for token in end_tokens:
                bias[token] = BANNED
        bad = [t for t in bias if not 0 <= t < n_vocab]
        if bad:
            raise ValueError(f"Token id {bad[0]} is outside the vocabulary (0-{n_vocab - 1}).")
        if bias:
            array = (ll.llama_logit_bias * len(bias))(*[ll.llama_logit_bias(t, b) for t, b in bias.items()])
            self._keepalive.append(array)
            self._add(ll.llama_sampler_init_logit_bias(n_vocab, len(bias), array))

        if p.grammar_string.strip():
            grammar = ll.llama_sampler_init_grammar(vocab, p.grammar_string.encode(), b"root")
            if not grammar:
                raise ValueError("The grammar could not be parsed (GBNF syntax, with a 'root' rule).")
            self._add(grammar)

        if p.repetition_penalty != 1.0 or p.frequency_penalty or p.presence_penalty:
            # 0 means all tokens; llama.cpp reads 0 and -1 as "off" (see ALL_TOKENS).
            last_n = p.repetition_penalty_range or ALL_TOKENS
            self._add(ll.llama_sampler_init_penalties(
                n_vocab, last_n, p.repetition_penalty, p.frequency_penalty, p.presence_penalty))

        if p.dry_multiplier > 0:
            breakers = [b.encode() for b in p.dry_breakers()]
            array = (ctypes.c_char_p * len(breakers))(*breakers)
            self._keepalive.append(array)
            self._add(ll.llama_sampler_init_dry(
                vocab, p.dry_multiplier, p.dry_base, p.dry_allowed_length, ALL_TOKENS,
                array, len(breakers)))

        if p.is_greedy:
            self._add(ll.llama_sampler_init_greedy())
            return

        if p.mirostat_mode == 1:
            self._add(ll.llama_sampler_init_temp(p.temperature))
            self._add(ll.llama_sampler_init_mirostat(n_vocab, self.seed, p.mirostat_tau, p.mirostat_eta, 100))
            return
        if p.mirostat_mode == 2:
            self._add(ll.llama_sampler_init_temp(p.temperature))
            self._add(ll.llama_sampler_init_mirostat_v2(self.seed, p.mirostat_tau, p.mirostat_eta))
            return

        self.add_truncation(p)
        self._add(ll.llama_sampler_init_dist(self.seed))

    def add_truncation(self, p: GenerationParams) -> None:
        """The candidate-narrowing samplers and the temperature, without the final draw."""
        if p.top_n_sigma > 0:
            self._add(ll.llama_sampler_init_top_n_sigma(p.top_n_sigma))
        if p.top_k > 0:
            self._add(ll.llama_sampler_init_top_k(p.top_k))
        if p.typical_p < 1.0:
            self._add(ll.llama_sampler_init_typical(p.typical_p, 1))
        if p.top_p < 1.0:
            self._add(ll.llama_sampler_init_top_p(p.top_p, 1))
        if p.min_p > 0:
            self._add(ll.llama_sampler_init_min_p(p.min_p, 1))
        if p.xtc_probability > 0:
            self._add(ll.llama_sampler_init_xtc(p.xtc_probability, p.xtc_threshold, 1, self.seed))
        if p.dynamic_temperature:
            middle = (p.dynatemp_low + p.dynatemp_high) / 2
            delta = (p.dynatemp_high - p.dynatemp_low) / 2
            self._add(ll.llama_sampler_init_temp_ext(middle, delta, p.dynatemp_exponent))
        else:
            self._add(ll.llama_sampler_init_temp(p.temperature))

    def free(self) -> None:
        if self.ptr:
            ll.llama_sampler_free(self.ptr)
            self.ptr = None
