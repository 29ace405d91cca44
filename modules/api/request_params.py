"""A request's fields -> the GenerationParams it runs with.

Layers, each over the one before: the defaults, the named `preset` (a preset file, as in
the Parameters tab), any GenerationParams field given by its own name (text-generation-
webui's sampler names: min_p, repetition_penalty, dry_multiplier...), then the OpenAI or
Anthropic fields (max_tokens, stop, temperature...). Everything is checked by
GenerationParams itself; a bad value is a 400 naming the field.
"""
from __future__ import annotations

from pathlib import Path

from modules import presets
from modules.api.errors import ApiError
from modules.params import SPECS_BY_NAME, GenerationParams, ParamError
from modules.roles import Identity


def build_params(extra: dict | None, mapped: dict, *, preset: str | None, preset_store, who: Identity,
                 max_tokens_limit: int) -> GenerationParams:
    """`extra`: the body's fields beyond the schema (sampler names are taken from it);
    `mapped`: API fields already renamed to GenerationParams names (None = not given)."""
    base = GenerationParams()
    if preset:
        try:
            base, _warnings = presets.load_preset(preset, preset_store, who)
        except presets.PresetError as exc:
            raise ApiError(400, f"preset: {exc}", param="preset") from None
    values = base.to_dict()
    values.update({k: v for k, v in (extra or {}).items() if k in SPECS_BY_NAME})
    values.update({k: v for k, v in mapped.items() if v is not None})
    check_max_tokens(values.get("max_new_tokens"), max_tokens_limit)
    try:
        return GenerationParams.from_dict(values)
    except ParamError as exc:
        raise ApiError(400, str(exc)) from None


def check_max_tokens(value, limit: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"max_tokens must be a whole number, got {value!r}.", param="max_tokens")
    if value < 1:
        raise ApiError(400, f"max_tokens must be at least 1, got {value}.", param="max_tokens")
    if value > limit:
        raise ApiError(400, f"max_tokens {value:,} is more than this server allows one request "
                       f"({limit:,}, --max-new-tokens-limit).", param="max_tokens")


def stop_strings(stop) -> list[str] | None:
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


def token_bias(logit_bias: dict | None) -> dict | None:
    if logit_bias is None:
        return None
    try:
        return {int(token): float(bias) for token, bias in logit_bias.items()}
    except (TypeError, ValueError):
        raise ApiError(400, "logit_bias keys must be token ids.", param="logit_bias") from None


def openai_fields(body) -> dict:
    """The OpenAI sampling fields under GenerationParams names."""
    if body.n != 1:
        raise ApiError(400, "n: only one choice per request is supported (n=1).", param="n")
    max_tokens = getattr(body, "max_completion_tokens", None) or body.max_tokens
    temperature = body.temperature
    return {"max_new_tokens": max_tokens, "temperature": temperature,
            "do_sample": (temperature > 0) if temperature is not None else None,
            "top_p": body.top_p, "custom_stopping_strings": stop_strings(body.stop), "seed": body.seed,
            "frequency_penalty": body.frequency_penalty, "presence_penalty": body.presence_penalty,
            "logit_bias": token_bias(body.logit_bias)}


def anthropic_fields(body) -> dict:
    temperature = body.temperature
    return {"max_new_tokens": body.max_tokens, "temperature": temperature,
            "do_sample": (temperature > 0) if temperature is not None else None,
            "top_p": body.top_p, "top_k": body.top_k,
            "custom_stopping_strings": stop_strings(body.stop_sequences)}


def check_model(requested: str | None, loaded_name: str | None, list_available) -> None:
    """A request naming a model must name the loaded one (by file name, with or without
    its extension); no name means the loaded model. list_available() names the others."""
    if not requested or loaded_name is None:
        return
    if requested in (loaded_name, Path(loaded_name).stem):
        return
    available = list_available()
    if requested in available or requested in {Path(name).stem for name in available}:
        raise ApiError(400, f"The model '{requested}' is not loaded; '{loaded_name}' is. An admin can "
                       f"load it (POST /v1/internal/model/load).", code="model_not_loaded", param="model")
    raise ApiError(404, f"The model '{requested}' does not exist here; GET /v1/models lists the models.",
                   code="model_not_found", param="model")
