"""Helpers for Hugging Face model folders (config.json + weights + tokenizer files).

Cheap checks first: is_hf_folder / is_gptq_folder read only small JSON files, so the
model list can call them for every folder. check_folder explains, before any weights are
read, the failures a user would otherwise meet as a stack trace. The tokenizer tables at
the end (raw bytes per token, end-of-generation ids) serve the Transformers backend.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from loaders.base import ModelLoadError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# Tokens chat models use to end their turn, besides the configured eos ids.
CHAT_END_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                   "<|end_of_text|>", "</s>")


def _read_json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_config(path: str | Path) -> dict:
    """config.json as a dict; ModelLoadError when it is missing or not valid JSON."""
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"'{Path(path).name}' has no config.json, so it is not a Hugging Face model folder.")
    config = _read_json(config_file)
    if config is None:
        raise ModelLoadError(f"{config_file} is not valid JSON.")
    return config


def is_hf_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "config.json").is_file()


def is_gptq_folder(path: str | Path) -> bool:
    """True when config.json says quant_method gptq, or a quantize_config.json exists
    (the older AutoGPTQ layout)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / "quantize_config.json").is_file():
        return True
    config = _read_json(path / "config.json") or {}
    quant = config.get("quantization_config")
    return isinstance(quant, dict) and str(quant.get("quant_method", "")).lower() == "gptq"


def weight_files(path: str | Path) -> list[Path]:
    path = Path(path)
    return sorted(p for p in path.iterdir()
                  if p.is_file() and p.suffix in WEIGHT_SUFFIXES and not p.name.startswith("training_"))


def weights_size(path: str | Path) -> int:
    return sum(p.stat().st_size for p in weight_files(path))


def chat_template_from_folder(path: str | Path) -> str | None:
    """The folder's chat template: chat_template.jinja, then chat_template.json, then
    tokenizer_config.json's chat_template; None when there is none."""
    path = Path(path)
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        text = jinja.read_text(encoding="utf-8")
        if text.strip():
            return text
    for name in ("chat_template.json", "tokenizer_config.json"):
        data = _read_json(path / name) or {}
        template = data.get("chat_template")
        if isinstance(template, list):   # named templates: [{"name": ..., "template": ...}]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default") or next(iter(named.values()), None)
        if isinstance(template, str) and template.strip():
            return template
    return None


def check_folder(path: str | Path, trust_remote_code: bool = False,
                 bytes_per_stored_byte: float = 1.0) -> dict:
    """Raises ModelLoadError with a plain explanation when the folder cannot be loaded;
    returns its config. bytes_per_stored_byte: how much the weights grow in memory
    (2.0 when fp16 files are loaded as fp32)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelLoadError(f"'{path}' is not a folder.")
    config = read_config(path)
    if not weight_files(path):
        raise ModelLoadError(
            f"'{path.name}' has a config.json but no weights (*.safetensors or *.bin). "
            "The download may be incomplete.")
    _check_architecture(path, config, trust_remote_code)
    _check_memory(path, bytes_per_stored_byte)
    return config


def _check_architecture(path: Path, config: dict, trust_remote_code: bool) -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if "auto_map" in config:
        if not trust_remote_code:
            raise ModelLoadError(
                f"'{path.name}' runs its own Python code (auto_map in config.json). Load it with "
                "trust-remote-code only if you trust its authors.")
        return
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    known_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if model_type not in CONFIG_MAPPING_NAMES:
        raise ModelLoadError(
            f"'{path.name}' uses the model type '{model_type}', which this version of "
            "transformers does not know. Upgrade transformers or use a GGUF file of the model.")
    if architectures and not any(a in known_classes for a in architectures):
        raise ModelLoadError(
            f"'{path.name}' is a '{', '.join(architectures)}', which is not a text-generation "
            "architecture this version of transformers knows.")


def _check_memory(path: Path, factor: float) -> None:
    import psutil

    needed = weights_size(path) * factor
    available = psutil.virtual_memory().available
    if needed > available:
        raise ModelLoadError(
            f"'{path.name}' needs about {needed / 2**30:.1f} GiB of memory but only "
            f"{available / 2**30:.1f} GiB is free. Close other programs, load a smaller or "
            "quantized model (GGUF or GPTQ), or use --bf16 to halve the size.")


# ---- tokenizer tables (a loaded tokenizer of the folder) --------------------------------------
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte <-> printable character map used by byte-level BPE."""
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    chars = visible[:]
    extra = 0
    for b in range(256):
        if b not in visible:
            visible.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(visible, map(chr, chars)))


def _decoder_kind(tokenizer) -> str:
    """'byte_level' (GPT-2 style), 'sentencepiece' (▁ for spaces, <0xNN> byte tokens) or
    'other', read from the fast tokenizer's decoder description."""
    try:
        decoder = json.loads(tokenizer.backend_tokenizer.to_str()).get("decoder") or {}
    except Exception:
        return "other"
    text = json.dumps(decoder)
    if '"ByteLevel"' in text:
        return "byte_level"
    if "Metaspace" in text or "ByteFallback" in text or "\u2581" in text or "\\u2581" in text:
        return "sentencepiece"
    return "other"


_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def token_table(tokenizer) -> tuple[list[bytes], frozenset[int]]:
    """Raw bytes of every token, and the ids of special tokens. Tokens are mapped one by
    one so a token holding half of an emoji yields exactly its bytes."""
    count = len(tokenizer)
    names = tokenizer.convert_ids_to_tokens(list(range(count)))
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    special = {i for i, tok in added.items() if getattr(tok, "special", False)}
    special |= set(tokenizer.all_special_ids)
    kind = _decoder_kind(tokenizer)
    byte_of = {c: b for b, c in _bytes_to_unicode().items()}
    pieces = []
    for token_id, name in enumerate(names):
        if name is None:
            pieces.append(b"")
        elif token_id in added:                    # added tokens are stored as plain text
            pieces.append(name.encode("utf-8"))
        elif kind == "byte_level" and all(c in byte_of for c in name):
            pieces.append(bytes(byte_of[c] for c in name))
        elif kind == "sentencepiece":
            match = _BYTE_TOKEN.fullmatch(name)
            pieces.append(bytes([int(match.group(1), 16)]) if match
                          else name.replace("\u2581", " ").encode("utf-8"))
        else:
            pieces.append(tokenizer.decode([token_id]).encode("utf-8"))
    return pieces, frozenset(special)


def end_of_generation_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[name] for name in CHAT_END_TOKENS if name in vocab)
    return ids


def tokenizer_adds_bos(tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    return tokenizer("a")["input_ids"][:1] == [bos]

