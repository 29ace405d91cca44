"""GenerationParams: the one set of sampler settings that flows from the UI, the API
and the presets to every loader.

Field names are text-generation-webui's preset keys, so its preset files load as is.
Every field is described once in PARAM_SPECS (default, range, group, one-line help);
the Parameters tab, preset files and validation all read that table.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass, field
from typing import Any


class ParamError(ValueError):
    """A sampler value the user gave is out of range or of the wrong type."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    group: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None


def _spec(name, default, group, help, minimum=None, maximum=None, step=None):
    return ParamSpec(name, default, group, help, minimum, maximum, step)


PARAM_SPECS: tuple[ParamSpec, ...] = (
    # Length
    _spec("max_new_tokens", 512, "Length", "Most tokens the reply may have.", 1, 32768, 1),
    _spec("custom_stopping_strings", [], "Length",
          "The reply ends when one of these strings appears; the string itself is not shown."),
    _spec("ban_eos_token", False, "Length",
          "Never let the model end the reply by itself: it writes until max_new_tokens."),
    # Randomness
    _spec("temperature", 1.0, "Randomness",
          "Below 1 sharpens the choice towards the likeliest words, above 1 flattens it "
          "(more surprising text). 0 always takes the likeliest word.", 0.0, 5.0, 0.01),
    _spec("do_sample", True, "Randomness",
          "Off: always take the likeliest token (greedy), whatever the other settings."),
    _spec("seed", -1, "Randomness",
          "The same seed and settings give the same text again. -1 picks a new seed each time.",
          -1, 2**31 - 1, 1),
    _spec("dynamic_temperature", False, "Randomness",
          "Scale the temperature between dynatemp_low and dynatemp_high by how sure the model is."),
    _spec("dynatemp_low", 1.0, "Randomness", "Temperature used when the model is sure.", 0.0, 5.0, 0.01),
    _spec("dynatemp_high", 1.0, "Randomness", "Temperature used when the model hesitates.", 0.0, 5.0, 0.01),
    _spec("dynatemp_exponent", 1.0, "Randomness",
          "How fast the temperature moves from low to high as uncertainty grows.", 0.01, 5.0, 0.01),
    # Truncation of the candidate list
    _spec("top_k", 0, "Candidates",
          "Keep only the k likeliest tokens. 0 turns it off; 1 is greedy.", 0, 200, 1),
    _spec("top_p", 1.0, "Candidates",
          "Keep the likeliest tokens until their probabilities add up to p (nucleus sampling). "
          "1 turns it off.", 0.0, 1.0, 0.01),
    _spec("min_p", 0.0, "Candidates",
          "Drop tokens less likely than min_p times the likeliest one. Adapts to how sure "
          "the model is; 0.05-0.1 is a good start.", 0.0, 1.0, 0.01),
    _spec("typical_p", 1.0, "Candidates",
          "Keep tokens whose surprise is close to the average surprise. 1 turns it off.",
          0.0, 1.0, 0.01),
    _spec("top_n_sigma", 0.0, "Candidates",
          "Keep tokens whose score is within n standard deviations of the best. 0 turns it off.",
          0.0, 10.0, 0.01),
    _spec("xtc_threshold", 0.1, "Candidates",
          "XTC: tokens above this probability count as 'too obvious'.", 0.0, 0.5, 0.01),
    _spec("xtc_probability", 0.0, "Candidates",
          "XTC: how often the too-obvious tokens but the least likely of them are removed, "
          "for more creative text. 0 turns it off.", 0.0, 1.0, 0.01),
    # Repetition
    _spec("repetition_penalty", 1.0, "Repetition",
          "Makes tokens already in the text less likely. 1 turns it off; 1.1-1.2 is typical.",
          1.0, 2.0, 0.01),
    _spec("repetition_penalty_range", 1024, "Repetition",
          "How many of the last tokens the penalties look at. 0 means all.", 0, 32768, 1),
    _spec("frequency_penalty", 0.0, "Repetition",
          "Lowers a token's score by this much for each time it already appeared.", -2.0, 2.0, 0.01),
    _spec("presence_penalty", 0.0, "Repetition",
          "Lowers a token's score by this much once it appeared at all.", -2.0, 2.0, 0.01),
    _spec("dry_multiplier", 0.0, "Repetition",
          "DRY: penalises continuing a sequence that already occurred. 0 turns it off; 0.8 is typical.",
          0.0, 5.0, 0.01),
    _spec("dry_base", 1.75, "Repetition", "DRY: how fast the penalty grows with the repeat's length.",
          1.0, 4.0, 0.01),
    _spec("dry_allowed_length", 2, "Repetition", "DRY: repeats up to this length are not penalised.",
          1, 20, 1),
    _spec("dry_sequence_breakers", '"\\n", ":", "\\"", "*"', "Repetition",
          "DRY: strings that end a repeated sequence, comma separated and quoted."),
    # Mirostat
    _spec("mirostat_mode", 0, "Mirostat",
          "Aim the text at a steady level of surprise instead of using the truncation settings. "
          "0 off, 1 Mirostat, 2 Mirostat 2.0.", 0, 2, 1),
    _spec("mirostat_tau", 5.0, "Mirostat", "Mirostat: the target surprise.", 0.0, 10.0, 0.01),
    _spec("mirostat_eta", 0.1, "Mirostat", "Mirostat: how fast it corrects itself.", 0.0, 1.0, 0.01),
    # Tokens
    _spec("add_bos_token", True, "Tokens", "Start the prompt with the model's beginning-of-text token."),
    _spec("skip_special_tokens", True, "Tokens", "Hide special tokens (like <|im_end|>) in the reply."),
    _spec("logit_bias", {}, "Tokens", "Token id -> number added to its score (-100 bans it)."),
    _spec("custom_token_bans", "", "Tokens", "Token ids the model may never produce, comma separated."),
    _spec("grammar_string", "", "Tokens", "A GBNF grammar the reply must follow (llama.cpp format)."),
)

SPECS_BY_NAME = {spec.name: spec for spec in PARAM_SPECS}

# Keys text-generation-webui presets may hold that have no effect here. They are accepted
# so a user's preset file loads, and reported so nothing is ignored silently.
UNSUPPORTED_PRESET_KEYS = frozenset({
    "tfs", "top_a", "epsilon_cutoff", "eta_cutoff", "smoothing_factor", "smoothing_curve",
    "guidance_scale", "negative_prompt", "penalty_alpha", "encoder_repetition_penalty",
    "no_repeat_ngram_size", "temperature_last", "sampler_priority", "auto_max_new_tokens",
    "truncation_length", "stream", "num_beams", "length_penalty", "early_stopping",
    "prompt_lookup_num_tokens", "static_cache", "dry_sequence_breakers_list",
})


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 512
    custom_stopping_strings: tuple[str, ...] = ()
    ban_eos_token: bool = False
    temperature: float = 1.0
    do_sample: bool = True
    seed: int = -1
    dynamic_temperature: bool = False
    dynatemp_low: float = 1.0
    dynatemp_high: float = 1.0
    dynatemp_exponent: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    typical_p: float = 1.0
    top_n_sigma: float = 0.0
    xtc_threshold: float = 0.1
    xtc_probability: float = 0.0
    repetition_penalty: float = 1.0
    repetition_penalty_range: int = 1024
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_sequence_breakers: str = '"\\n", ":", "\\"", "*"'
    mirostat_mode: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    add_bos_token: bool = True
    skip_special_tokens: bool = True
    logit_bias: dict = field(default_factory=dict)
    custom_token_bans: str = ""
    grammar_string: str = ""

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict, *, strict: bool = True) -> "GenerationParams":
        """Builds validated params. Unknown keys raise in strict mode (API callers);
        preset loading uses split_preset_keys first to report them instead."""
        clean = {}
        for key, value in values.items():
            if key not in SPECS_BY_NAME:
                if strict:
                    raise ParamError(f"Unknown sampler setting '{key}'.")
                continue
            clean[key] = _coerce(SPECS_BY_NAME[key], value)
        return cls(**clean)

    def replace(self, **changes) -> "GenerationParams":
        return GenerationParams.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["custom_stopping_strings"] = list(self.custom_stopping_strings)
        return data

    def non_default_items(self) -> dict:
        """Only what differs from the defaults: what a preset file stores."""
        defaults = GenerationParams().to_dict()
        return {k: v for k, v in self.to_dict().items() if defaults[k] != v}

    # ---- derived values loaders use ----------------------------------------------------
    @property
    def is_greedy(self) -> bool:
        return (not self.do_sample) or self.temperature <= 0

    def dry_breakers(self) -> list[str]:
        return parse_string_list(self.dry_sequence_breakers)

    def banned_token_ids(self) -> list[int]:
        text = self.custom_token_bans.strip()
        if not text:
            return []
        return [int(part) for part in text.split(",") if part.strip()]

    def __post_init__(self):
        for spec in PARAM_SPECS:
            _check_range(spec, getattr(self, spec.name))
        if self.dynamic_temperature and self.dynatemp_low > self.dynatemp_high:
            raise ParamError("dynatemp_low must not be greater than dynatemp_high.")
        try:
            self.banned_token_ids()
        except ValueError:
            raise ParamError("custom_token_bans must be token ids separated by commas, e.g. '13, 2'.")


def split_preset_keys(values: dict) -> tuple[dict, list[str], list[str]]:
    """Splits a preset mapping into (known settings, unsupported keys, unknown keys)."""
    known = {k: v for k, v in values.items() if k in SPECS_BY_NAME}
    unsupported = sorted(k for k in values if k in UNSUPPORTED_PRESET_KEYS)
    unknown = sorted(k for k in values if k not in SPECS_BY_NAME and k not in UNSUPPORTED_PRESET_KEYS)
    return known, unsupported, unknown


def parse_string_list(text: str | list | tuple) -> list[str]:
    """Reads text-generation-webui's stop-string syntax: '"\\n", "User:"' (JSON-like
    quoted strings separated by commas). A bare string without quotes is one item."""
    if isinstance(text, (list, tuple)):
        return [str(item) for item in text if str(item) != ""]
    text = (text or "").strip()
    if not text:
        return []
    try:
        items = json.loads("[" + text + "]")
        return [str(item) for item in items if str(item) != ""]
    except json.JSONDecodeError:
        pass
    try:
        lexer = shlex.shlex(text, posix=True)
        lexer.whitespace = ","
        lexer.whitespace_split = True
        return [item.strip() for item in lexer if item.strip()]
    except ValueError:
        return [text]


def _coerce(spec: ParamSpec, value):
    default = spec.default
    try:
        if spec.name == "custom_stopping_strings":
            return tuple(parse_string_list(value))
        if spec.name == "logit_bias":
            if isinstance(value, str):
                value = json.loads(value) if value.strip() else {}
            return {int(k): float(v) for k, v in dict(value).items()}
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes", "on"):
                    return True
                if value.lower() in ("false", "0", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            as_float = float(value)
            if as_float != int(as_float):
                raise ValueError(value)
            return int(as_float)
        if isinstance(default, float):
            return float(value)
        return "" if value is None else str(value)
    except (TypeError, ValueError, json.JSONDecodeError):
        kind = type(default).__name__ if spec.name != "logit_bias" else "a mapping of token id to number"
        raise ParamError(f"{spec.name} must be {kind}, got {value!r}.") from None


def _check_range(spec: ParamSpec, value):
    if spec.minimum is None or isinstance(value, bool):
        return
    if not (spec.minimum <= value <= spec.maximum):
        raise ParamError(
            f"{spec.name} must be between {_fmt(spec.minimum)} and {_fmt(spec.maximum)}, got {_fmt(value)}.")


def _fmt(number) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)
