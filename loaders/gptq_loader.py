"""GPTQ 4-bit (and 2/3/8-bit) folders, loaded through transformers; gptqmodel picks the
kernel (a CPU one when there is no GPU). Decoding is the transformers backend's.

Before any weights are read this checks what would otherwise fail deep inside
gptqmodel: a missing or broken quantize config, and, on the CPU, layers whose width is
not a multiple of the group size (the CPU kernel cannot run those).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from loaders.base import ModelLoadError
from loaders.hf_folder import read_config, weight_files
from loaders.settings import LoadSettings, available_cores

VALID_BITS = (2, 3, 4, 8)


def load(path: str, settings: LoadSettings, progress):
    # gptqmodel reads this when it is imported; on a small machine it refuses to start
    # unless the worker count fits the cores it may use.
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(available_cores()))
    import torch
    from loaders.transformers_loader import load_folder

    quant, source = read_quantize_config(path)
    gpu = torch.cuda.is_available() and not settings.cpu
    if not gpu:
        check_cpu_kernel(path, quant)
    if settings.load_in_8bit or settings.load_in_4bit:
        raise ModelLoadError("This model is already quantized with GPTQ; turn off load-in-8bit/4bit.")
    config = None
    if source == "quantize_config.json":
        # The older AutoGPTQ layout keeps the settings beside config.json; transformers
        # only reads config.json, so hand it a config that carries them.
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path, trust_remote_code=settings.trust_remote_code)
        config.quantization_config = {**quant, "quant_method": "gptq"}
    progress(0.05, f"GPTQ {quant['bits']}-bit, group size {quant.get('group_size', -1)} ({source})")
    backend = load_folder(path, settings, progress, loader_name="GPTQ", config_override=config, quantized=True)
    backend.info.details["gptq_kernel"] = _kernel_names(backend.model)
    return backend


def read_quantize_config(path: str) -> tuple[dict, str]:
    """The GPTQ settings and the file they came from; ModelLoadError when missing or
    unusable, naming the file and the field."""
    folder = Path(path)
    config = read_config(folder)
    quant = config.get("quantization_config")
    source = "config.json"
    if not (isinstance(quant, dict) and str(quant.get("quant_method", "")).lower() == "gptq"):
        source = "quantize_config.json"
        file = folder / source
        if not file.is_file():
            raise ModelLoadError(f"'{folder.name}' has no GPTQ settings: neither a quantization_config "
                                 "with quant_method 'gptq' in config.json nor a quantize_config.json.")
        try:
            quant = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelLoadError(f"{source} in '{folder.name}' is not valid JSON: {exc}") from None
        if not isinstance(quant, dict):
            raise ModelLoadError(f"{source} in '{folder.name}' must hold a JSON object.")
    problems = _quant_problems(quant)
    if problems:
        raise ModelLoadError(f"The GPTQ settings in {source} of '{folder.name}' are broken: "
                             + "; ".join(problems) + ".")
    return quant, source


def _quant_problems(quant: dict) -> list[str]:
    problems = []
    bits = quant.get("bits")
    if not isinstance(bits, int) or isinstance(bits, bool) or bits not in VALID_BITS:
        problems.append(f"bits is {bits!r}, expected one of {', '.join(map(str, VALID_BITS))}")
    group = quant.get("group_size", -1)
    if not isinstance(group, int) or isinstance(group, bool) or (group != -1 and group <= 0):
        problems.append(f"group_size is {group!r}, expected a positive whole number or -1")
    for flag in ("desc_act", "sym"):
        if flag in quant and not isinstance(quant[flag], bool):
            problems.append(f"{flag} is {quant[flag]!r}, expected true or false")
    return problems


def check_cpu_kernel(path: str, quant: dict) -> None:
    """gptqmodel's CPU kernel needs every quantized layer's input width to be a multiple
    of group_size. The widths are read from the safetensors headers (no weights loaded)."""
    group = quant.get("group_size", -1)
    if group == -1:
        return
    bad = {}
    for name, width in quantized_layer_widths(path, quant["bits"]).items():
        if width % group:
            bad[name] = width
    if bad:
        widths = sorted(set(bad.values()))
        example = next(iter(bad))
        raise ModelLoadError(
            f"This GPTQ model cannot run on the CPU: it was quantized with group_size {group}, but "
            f"{len(bad)} layers (e.g. {example}) have an input width of {', '.join(map(str, widths))}, "
            f"which is not a multiple of {group}. gptqmodel's CPU kernel needs that. Use a GPU, or a "
            "version of the model quantized with a group size that divides those widths "
            f"(e.g. {_suggest_group(widths)}), or a GGUF file.")


def quantized_layer_widths(path: str, bits: int) -> dict[str, int]:
    from safetensors import safe_open

    widths = {}
    for file in weight_files(path):
        if file.suffix != ".safetensors":
            continue
        with safe_open(str(file), framework="pt") as handle:
            keys = set(handle.keys())
            for key in keys:
                if not key.endswith(".qweight"):
                    continue
                layer = key[: -len(".qweight")]
                if layer + ".g_idx" in keys:       # one group index per input column
                    widths[layer] = handle.get_slice(layer + ".g_idx").get_shape()[0]
                else:                              # int32 words, each packing 32 // bits values
                    widths[layer] = handle.get_slice(key).get_shape()[0] * 32 // bits
    return widths


def _suggest_group(widths: list[int]) -> int:
    for size in (128, 64, 32, 16):
        if all(w % size == 0 for w in widths):
            return size
    return 8


def _kernel_names(model) -> list[str]:
    return sorted({type(m).__name__ for m in model.modules() if hasattr(m, "qweight")})
