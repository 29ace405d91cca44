"""Helpers for Hugging Face model folders (config.json + weights + tokenizer files).

Cheap checks first: is_hf_folder / is_gptq_folder read only small JSON files, so the
model list can call them for every folder. check_folder explains, before any weights are
read, the failures a user would otherwise meet as a stack trace.
"""
from __future__ import annotations

import json
from pathlib import Path

from loaders.base import ModelLoadError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


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
