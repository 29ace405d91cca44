"""The scheduler's per-token log-probabilities in OpenAI's two shapes.

An entry from the scheduler is ((token, bytes, logprob), [(token, bytes, logprob), ...]):
the sampled token and the likeliest alternatives under the request's own sampler chain.
"""
from __future__ import annotations


def _text(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace")


def chat_logprobs(entries: list) -> dict:
    """{"content": [...]} of a chat completion (or of one streamed chunk)."""
    return {"content": [
        {"token": _text(piece), "bytes": list(piece), "logprob": logprob,
         "top_logprobs": [{"token": _text(p), "bytes": list(p), "logprob": lp} for _t, p, lp in top]}
        for (_token, piece, logprob), top in entries], "refusal": None}


def completion_logprobs(entries: list, start_offset: int = 0) -> dict:
    """The legacy completions shape: parallel lists, top_logprobs as {token: logprob}."""
    tokens, token_logprobs, tops, offsets = [], [], [], []
    offset = start_offset
    for (_token, piece, logprob), top in entries:
        text = _text(piece)
        tokens.append(text)
        token_logprobs.append(logprob)
        tops.append({_text(p): lp for _t, p, lp in top})
        offsets.append(offset)
        offset += len(text)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": tops, "text_offset": offsets}
