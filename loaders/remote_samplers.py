"""GenerationParams -> the fields of a remote engine's /v1/completions request, and the
samplers in use that the engine does not take (named to the user, never dropped silently).

What each engine takes comes from its documented request fields: llama-cpp-python's
server (CreateCompletionRequest; the one the tests run), llama.cpp's server (its native
sampler names), vLLM (its extra sampling parameters), TGI (its OpenAI route) and a plain
OpenAI-compatible server such as Ollama's /v1 (the standard fields only). Fields the
engine takes are always sent, so its own defaults (llama-cpp-python's top_k 40, min_p
0.05, repeat_penalty 1.1) never replace ours.
"""
from __future__ import annotations

from modules.params import GenerationParams

ENGINES = ("vllm", "llama.cpp", "llama-cpp-python", "tgi", "openai")
ENGINE_TITLES = {"vllm": "vLLM", "llama.cpp": "llama.cpp server", "llama-cpp-python": "llama-cpp-python server",
                 "tgi": "Text Generation Inference", "openai": "OpenAI-compatible server"}

_STANDARD = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})
TAKES: dict[str, frozenset[str]] = {
    "openai": _STANDARD,
    "tgi": frozenset({"temperature", "top_p", "frequency_penalty", "repetition_penalty"}),
    "llama-cpp-python": _STANDARD | {"top_k", "min_p", "repetition_penalty", "mirostat_mode", "grammar_string",
                                     "logit_bias", "custom_token_bans"},
    "vllm": _STANDARD | {"top_k", "min_p", "repetition_penalty", "logit_bias", "custom_token_bans",
                         "ban_eos_token", "skip_special_tokens"},
    "llama.cpp": _STANDARD | {"top_k", "min_p", "typical_p", "top_n_sigma", "xtc_probability",
                              "repetition_penalty", "repetition_penalty_range", "dry_multiplier",
                              "mirostat_mode", "dynamic_temperature", "grammar_string", "logit_bias",
                              "custom_token_bans", "ban_eos_token"},
}

# When a sampler is in use; the settings that only tune one (dry_base, mirostat_tau, ...)
# travel with it and are named by it.
_PENALTIES = ("repetition_penalty", "presence_penalty", "frequency_penalty")
IN_USE = {
    "dynamic_temperature": lambda p: p.dynamic_temperature and not p.is_greedy,
    "top_k": lambda p: p.top_k > 0,
    "top_p": lambda p: p.top_p < 1,
    "min_p": lambda p: p.min_p > 0,
    "typical_p": lambda p: p.typical_p < 1,
    "top_n_sigma": lambda p: p.top_n_sigma > 0,
    "xtc_probability": lambda p: p.xtc_probability > 0,
    "repetition_penalty": lambda p: p.repetition_penalty != 1,
    "presence_penalty": lambda p: p.presence_penalty != 0,
    "frequency_penalty": lambda p: p.frequency_penalty != 0,
    "repetition_penalty_range": lambda p: any(IN_USE[name](p) for name in _PENALTIES),
    "dry_multiplier": lambda p: p.dry_multiplier > 0,
    "mirostat_mode": lambda p: p.mirostat_mode > 0,
    "ban_eos_token": lambda p: p.ban_eos_token,
    "logit_bias": lambda p: bool(p.logit_bias),
    "custom_token_bans": lambda p: bool(p.banned_token_ids()),
    "grammar_string": lambda p: bool(p.grammar_string.strip()),
    "skip_special_tokens": lambda p: not p.skip_special_tokens,
}
_WHAT_HAPPENS = {
    "repetition_penalty_range": "its penalties look back over a range of its own",
    "skip_special_tokens": "special tokens are left out of the reply as the server decides",
    "ban_eos_token": "the reply may end when the model ends its turn",
}


def not_taken(params: GenerationParams, engine: str) -> list[str]:
    """One message for each sampler in use that the engine does not take."""
    takes, title = TAKES[engine], ENGINE_TITLES[engine]
    return [f"The remote server ({title}) does not take {name}; "
            f"{_WHAT_HAPPENS.get(name, 'it was not applied')}."
            for name, used in IN_USE.items() if name not in takes and used(params)]


def request_fields(params: GenerationParams, engine: str) -> dict:
    """The sampler fields of one /v1/completions request (model, prompt and stream apart)."""
    takes = TAKES[engine]
    greedy = params.is_greedy
    body = {"max_tokens": params.max_new_tokens, "temperature": 0.0 if greedy else params.temperature,
            "top_p": 1.0 if greedy else params.top_p}
    if params.seed >= 0:
        body["seed"] = params.seed
    stops = list(params.custom_stopping_strings)
    if stops:           # also stopped here; the remote's copy saves it the tokens after one
        body["stop"] = stops[:4] if engine == "openai" else stops     # OpenAI's own limit is 4
    for name in ("presence_penalty", "frequency_penalty"):
        if name in takes:
            body[name] = getattr(params, name)
    body.update(_ENGINE_FIELDS[engine](params, greedy))
    if "logit_bias" in takes:
        bias = {**{str(t): float(b) for t, b in params.logit_bias.items()},
                **{str(t): -100.0 for t in params.banned_token_ids()}}
        if bias:
            body["logit_bias"] = [[int(t), b] for t, b in bias.items()] if engine == "llama.cpp" else bias
    return body


def _none(params, greedy) -> dict:
    return {}


def _tgi(params, greedy) -> dict:
    return {"repetition_penalty": params.repetition_penalty} if params.repetition_penalty != 1 else {}


def _llama_cpp_python(params, greedy) -> dict:
    fields = {"top_k": 1 if greedy else params.top_k, "min_p": params.min_p,
              "repeat_penalty": params.repetition_penalty, "mirostat_mode": params.mirostat_mode,
              "mirostat_tau": params.mirostat_tau, "mirostat_eta": params.mirostat_eta}
    if params.grammar_string.strip():
        fields["grammar"] = params.grammar_string
    return fields


def _vllm(params, greedy) -> dict:
    return {"top_k": 1 if greedy else (params.top_k or -1), "min_p": params.min_p,
            "repetition_penalty": params.repetition_penalty, "ignore_eos": params.ban_eos_token,
            "skip_special_tokens": params.skip_special_tokens}


def _llama_cpp(params, greedy) -> dict:
    fields = {"top_k": 1 if greedy else params.top_k, "min_p": params.min_p, "typical_p": params.typical_p,
              "top_n_sigma": params.top_n_sigma or -1.0, "xtc_probability": params.xtc_probability,
              "xtc_threshold": params.xtc_threshold, "repeat_penalty": params.repetition_penalty,
              "repeat_last_n": params.repetition_penalty_range or -1,       # -1: the whole context
              "dry_multiplier": params.dry_multiplier, "dry_base": params.dry_base,
              "dry_allowed_length": params.dry_allowed_length, "dry_penalty_last_n": -1,
              "dry_sequence_breakers": params.dry_breakers(), "mirostat": params.mirostat_mode,
              "mirostat_tau": params.mirostat_tau, "mirostat_eta": params.mirostat_eta,
              "ignore_eos": params.ban_eos_token}
    if params.dynamic_temperature and not greedy:     # llama.cpp: temperature +- range
        fields["temperature"] = (params.dynatemp_low + params.dynatemp_high) / 2
        fields["dynatemp_range"] = (params.dynatemp_high - params.dynatemp_low) / 2
        fields["dynatemp_exponent"] = params.dynatemp_exponent
    if params.grammar_string.strip():
        fields["grammar"] = params.grammar_string
    return fields


_ENGINE_FIELDS = {"openai": _none, "tgi": _tgi, "llama-cpp-python": _llama_cpp_python, "vllm": _vllm,
                  "llama.cpp": _llama_cpp}
