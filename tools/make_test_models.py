"""Builds the Hugging Face test models from the default GGUF, once.

    .venv/bin/python tools/make_test_models.py

makes, from models/SmolLM2-135M-Instruct.Q4_1.gguf:
  - an fp16 Hugging Face folder (transformers de-quantizes the GGUF), and
  - a GPTQ 4-bit folder (group_size 64: gptqmodel's CPU kernel needs in_features,
    576 for this model, to be a multiple of the group size).
They live outside the checkout, in ~/.cache/llm-workbench/test-models/ (or
$LLM_WORKBENCH_CACHE/test-models), because CI starts from a fresh clone and nothing may
be downloaded from a model hub. A folder counts as built only when its marker file
exists; the marker is written last and atomically, so an interrupted build is redone.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GGUF = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
FP16_NAME = "SmolLM2-135M-Instruct-fp16"
GPTQ_NAME = "SmolLM2-135M-Instruct-GPTQ-4bit-g64"
MARKER = ".complete.json"
RECIPE_VERSION = 1          # bump to force a rebuild when the recipe changes

# Calibration text for GPTQ: varied prose, code and chat turns in the model's format.
CALIBRATION = [
    "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome.",
    "Water boils at 100 degrees Celsius at sea level and freezes at 0 degrees.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "Once upon a time, a small robot lived in a quiet village by the sea.",
    "The mitochondria is the powerhouse of the cell, producing energy through respiration.",
    "In 1969, Apollo 11 landed on the Moon and Neil Armstrong took the first steps.",
    "To make tea, boil water, pour it over the leaves and wait three to five minutes.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen.",
    "<|im_start|>user\nTell me the capital of France.<|im_end|>\n<|im_start|>assistant\n"
    "The capital of France is Paris.<|im_end|>",
    "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 equals 4.<|im_end|>",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "Write a haiku about autumn.<|im_end|>\n<|im_start|>assistant\nRed leaves drift and fall,\n"
    "cool wind hums through empty trees,\nthe year breathes softly.<|im_end|>",
    "Machine learning models learn patterns from data and use them to make predictions.",
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.",
    "Shakespeare wrote Hamlet, Macbeth, Othello and King Lear among many other plays.",
    "A healthy breakfast can include oats, fruit, yogurt, eggs or whole-grain bread.",
    "The Pacific Ocean is the largest and deepest of Earth's oceans.",
]


def cache_dir() -> Path:
    base = os.environ.get("LLM_WORKBENCH_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "llm-workbench"
    return root / "test-models"


def _is_complete(folder: Path) -> bool:
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("recipe") == RECIPE_VERSION and all((folder / f).is_file() for f in marker["files"])


def _mark_complete(folder: Path) -> None:
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MARKER)
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"recipe": RECIPE_VERSION, "files": files, "built": time.time()}))
    os.replace(tmp, folder / MARKER)


def _build(folder: Path, make) -> None:
    """Builds into a scratch folder, marks it complete, then moves it into place."""
    scratch = folder.with_name(folder.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    scratch.mkdir(parents=True)
    make(scratch)
    _mark_complete(scratch)
    os.replace(scratch, folder)


def _make_fp16(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"de-quantizing {GGUF.name} -> {out.name} (about a minute)", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    from_gguf = AutoModelForCausalLM.from_pretrained(GGUF.parent, gguf_file=GGUF.name, dtype=torch.float32)
    # save_pretrained refuses a model loaded from GGUF: copy the weights into a fresh one.
    config = from_gguf.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float16
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float16)
    missing, unexpected = fresh.load_state_dict(from_gguf.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]   # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"weights do not match: missing {missing}, unexpected {unexpected}")
    fresh.generation_config = from_gguf.generation_config
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _make_gptq(source: Path, out: Path) -> None:
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(1, len(os.sched_getaffinity(0)))))
    from gptqmodel import GPTQModel, QuantizeConfig

    print(f"quantizing {source.name} -> {out.name} (GPTQ 4-bit, group 64; about two minutes)", flush=True)
    model = GPTQModel.load(str(source), QuantizeConfig(bits=4, group_size=64), device="cpu")
    model.quantize(CALIBRATION, batch_size=4)
    model.save(str(out))
    for name in ("chat_template.jinja", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (source / name).is_file() and not (out / name).is_file():
            shutil.copy2(source / name, out / name)


def ensure_test_models() -> dict[str, Path]:
    """Returns {"fp16": folder, "gptq": folder}, building what is missing."""
    if not GGUF.is_file():
        raise FileNotFoundError(f"{GGUF} is missing; see models/README.md for how to get it.")
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    fp16, gptq = root / FP16_NAME, root / GPTQ_NAME
    # One builder at a time: tests in parallel processes wait for the first one.
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_complete(fp16):
            _build(fp16, _make_fp16)
        if not _is_complete(gptq):
            _build(gptq, lambda out: _make_gptq(fp16, out))
    return {"fp16": fp16, "gptq": gptq}


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    start = time.perf_counter()
    for kind, folder in ensure_test_models().items():
        print(f"{kind}: {folder}")
    print(f"ready in {time.perf_counter() - start:.0f} s")
