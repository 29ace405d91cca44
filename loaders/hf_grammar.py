"""Constrained decoding for the torch backends (Transformers, GPTQ) through llguidance.

llama.cpp enforces GenerationParams.grammar_string with its own grammar sampler; here
llguidance (a maintained Rust library, also used by llama.cpp, vLLM and SGLang) does the
same job as a token mask: before each draw every token the grammar cannot take next gets
-inf, and the drawn token then advances the grammar. Each sequence has its own matcher, so
the sequences of a batch are constrained independently.

grammar_string may be GBNF (llama.cpp's format; llguidance's converter turns it into its
Lark dialect) or llguidance's Lark dialect itself (text starting with `%llguidance` or a
`start:` rule), which can embed a JSON schema as `%json {...}`: the API passes schemas
that way on these backends so that llguidance's own JSON-schema compiler enforces them.
"""
from __future__ import annotations

import json

import torch

NEG_INF = float("-inf")
# JSON written the compact way ({"a": 1, "b": [2, 3]}): with free whitespace a small model
# can pad a reply with newlines until it runs out of tokens.
COMPACT_JSON = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class GrammarError(ValueError):
    """The grammar cannot be used; the message says why and contains the word 'grammar'
    (the API answers such errors with a 400)."""


def schema_rule(schema: dict, rule: str = "start") -> str:
    """A rule of llguidance's Lark dialect that matches JSON valid under `schema`, compiled
    by llguidance's own JSON-schema compiler (`x-guidance` in the schema may override the
    compact style)."""
    style = schema.get("x-guidance")
    schema = {**schema, "x-guidance": {**COMPACT_JSON, **(style if isinstance(style, dict) else {})}}
    return f"{rule}: %json {json.dumps(schema)}"


def lark_grammar(*rules: str) -> str:
    """A grammar_string in llguidance's Lark dialect (the first rule named `start`), checked
    here so that a schema llguidance cannot compile is refused before any decoding."""
    from llguidance import LLMatcher, grammar_from

    text = "%llguidance {}\n" + "\n".join(rules)
    failed, messages = LLMatcher.validate_grammar_with_warnings(grammar_from("lark", text))
    if failed:
        raise GrammarError(f"The grammar is not valid: {_without_listing(messages[0])}")
    return text


def _without_listing(message: str) -> str:
    """llguidance's error followed by the grammar's lines, which may be long: the error only."""
    return message.split("\n   1 |")[0].strip()


class GrammarCompiler:
    """Turns grammar strings into per-sequence constraints for one loaded tokenizer.

    llguidance's view of the vocabulary (every token's bytes) takes about a second to build,
    so it is built once, on the first request with a grammar."""

    def __init__(self, hf_tokenizer, vocab_size: int, end_tokens: frozenset[int]):
        self._hf_tokenizer = hf_tokenizer
        self._vocab_size = vocab_size
        self._end_tokens = sorted(end_tokens)
        self._tokenizer = None

    def constraint(self, grammar_string: str) -> "TokenConstraint":
        """A fresh constraint for one sequence; GrammarError for a grammar that is not valid."""
        import llguidance

        try:
            grammar = llguidance.grammar_from("grammar", grammar_string)
        except ValueError as exc:
            raise GrammarError(f"The grammar cannot be read: {exc}") from None
        tokenizer = self._llg_tokenizer()
        failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
        if failed:
            raise GrammarError(f"The grammar is not valid: {_without_listing(messages[0])}")
        matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise GrammarError(f"The grammar is not valid: {_without_listing(matcher.get_error())}")
        return TokenConstraint(matcher)

    def _llg_tokenizer(self):
        if self._tokenizer is None:
            import llguidance.hf

            try:
                self._tokenizer = llguidance.hf.from_tokenizer(
                    self._hf_tokenizer, n_vocab=self._vocab_size, eos_token=self._end_tokens or None)
            except ValueError as exc:      # a slow (Python-only) tokenizer
                raise GrammarError(f"Grammars need a fast tokenizer for this model: {exc}") from None
        return self._tokenizer


class TokenConstraint:
    """One sequence's grammar state: which tokens may come next, advanced by each drawn
    token. When the grammar is complete only the end-of-generation tokens remain allowed.

    The mask belongs to the sequence's current logits: it is kept after a draw (the
    logprobs of the drawn token are read from the same logits afterwards) and computed
    again once the backend has the next position's logits (next_position)."""

    def __init__(self, matcher):
        self._matcher = matcher
        self._allowed: torch.Tensor | None = None     # for the current logits; None: not yet

    def restrict(self, logits: torch.Tensor) -> torch.Tensor:
        """Sets the logits of every token the grammar does not allow next to -inf (in place)."""
        allowed = self._allowed_tokens(logits.device)
        n = min(allowed.shape[0], logits.shape[-1])
        logits[:n].masked_fill_(~allowed[:n], NEG_INF)
        logits[n:] = NEG_INF
        return logits

    def next_position(self) -> None:
        self._allowed = None

    def accept(self, token: int) -> None:
        """Advances the grammar by the drawn token."""
        if not self._matcher.consume_token(token):
            raise GrammarError(f"The grammar could not take token {token}: {self._matcher.get_error()}")

    def _allowed_tokens(self, device) -> torch.Tensor:
        if self._allowed is None or self._allowed.device != device:
            if self._matcher.is_error():
                raise GrammarError(f"The grammar stopped matching: {self._matcher.get_error()}")
            # One byte per token: 0 (not allowed) or 200 (allowed).
            bias = torch.frombuffer(bytearray(self._matcher.compute_logit_bias()), dtype=torch.uint8)
            self._allowed = (bias != 0).to(device)
        return self._allowed
