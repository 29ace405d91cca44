"""The likeliest next tokens of a llama.cpp sequence, as its own sampler would see them.

The Probabilities view must show what sampling will actually draw from, so the raw
logits go through a fresh copy of the sequence's native sampler chain (bias and bans,
grammar, penalties, truncation, temperature) rather than a re-implementation that could
drift from it. A fresh chain keeps the sequence's own sampler (its random state,
Mirostat's running value) untouched. What survives is turned into probabilities with a
softmax; tokens the chain cut away have probability 0 and are left out.
"""
from __future__ import annotations

import ctypes

import llama_cpp as ll
import numpy as np

from loaders.llama_cpp_sampling import SamplerChain

# The memory layout of llama_token_data: {int32 id; float logit; float p}.
_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
assert _TOKEN_DATA.itemsize == ctypes.sizeof(ll.llama_token_data)


def top_candidates(ctx, vocab, n_vocab: int, seq, count: int) -> list[tuple[int, float]]:
    """(token id, probability) of the `count` likeliest next tokens, most likely first.

    The probabilities are over the candidates the sampler keeps, so they sum to 1 over
    all kept tokens (the returned top `count` sum to at most 1)."""
    pointer = ll.llama_get_logits_ith(ctx, seq.logits_index)
    logits = np.ctypeslib.as_array(pointer, shape=(n_vocab,))
    kept = _apply_chain(vocab, n_vocab, seq.params, logits)
    if len(kept) == 0:
        return []
    if seq.params.is_greedy:
        # Greedy decoding takes the likeliest token (after bias and bans) every time.
        best = int(np.argmax(kept["logit"]))
        return [(int(kept["id"][best]), 1.0)]
    scores = kept["logit"].astype(np.float64)
    finite = np.isfinite(scores)
    if not finite.any():
        return []
    ids, scores = kept["id"][finite], scores[finite]
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities, kind="stable")[:count]
    return [(int(ids[i]), float(probabilities[i])) for i in order]


def _apply_chain(vocab, n_vocab: int, params, logits: np.ndarray) -> np.ndarray:
    """Runs a fresh sampler chain with these settings over a copy of the logits and
    returns the candidates it kept (their logits scaled by the temperature)."""
    data = np.empty(n_vocab, dtype=_TOKEN_DATA)
    data["id"] = np.arange(n_vocab, dtype=np.int32)
    data["logit"] = logits
    data["p"] = 0.0
    array = ll.llama_token_data_array(
        data=data.ctypes.data_as(ctypes.POINTER(ll.llama_token_data)),
        size=n_vocab, selected=-1, sorted=False)
    end_tokens = _end_tokens(vocab, n_vocab) if params.ban_eos_token else []
    chain = SamplerChain(vocab, n_vocab, params, end_tokens)
    try:
        ll.llama_sampler_apply(chain.ptr, ctypes.byref(array))
        # Samplers shrink the array in place; read through its pointer (before the
        # chain is freed) in case one pointed it at a buffer of its own.
        address = ctypes.cast(array.data, ctypes.c_void_p).value
        raw = (ctypes.c_char * (int(array.size) * _TOKEN_DATA.itemsize)).from_address(address)
        return np.frombuffer(raw, dtype=_TOKEN_DATA).copy()
    finally:
        chain.free()


def _end_tokens(vocab, n_vocab: int) -> list[int]:
    return [t for t in range(n_vocab) if ll.llama_vocab_is_eog(vocab, t)]
