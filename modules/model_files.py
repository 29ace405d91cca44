"""Finding models on disk and deciding which loader each one needs.

A .gguf file goes to llama.cpp; a folder whose config or quantize_config says GPTQ goes
to the GPTQ loader; any other Hugging Face folder goes to Transformers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from loaders.hf_folder import is_gptq_folder

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class ModelEntry:
    name: str
    path: Path
    loader: str | None        # None: not recognisable as a model
    size_bytes: int
    problem: str = ""         # why it cannot be loaded, when known without loading

    @property
    def format(self) -> str:
        return {"llama.cpp": "GGUF", "GPTQ": "GPTQ 4-bit folder",
                "Transformers": "Hugging Face folder"}.get(self.loader or "", "unknown")


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def detect_loader(path: str | os.PathLike) -> str | None:
    path = Path(path)
    if path.is_file():
        return "llama.cpp" if path.suffix.lower() == ".gguf" else None
    if path.is_dir():
        if (path / "config.json").exists():
            return "GPTQ" if is_gptq_folder(path) else "Transformers"
        ggufs = sorted(path.glob("*.gguf"))
        if ggufs:
            return "llama.cpp"
    return None


def loader_mismatch(path: str | os.PathLike, loader: str) -> str | None:
    """Why `loader` cannot read `path`, in plain words; None when it can. Checked before
    anything is unloaded, so a wrong choice never costs everyone the working model."""
    path = Path(path)
    if loader == "llama.cpp" and not (path.is_file() and path.suffix.lower() == ".gguf"):
        return (f"llama.cpp reads .gguf files, and {path.name} is a folder without one. "
                f"Choose Transformers or GPTQ for it.")
    if loader in ("Transformers", "GPTQ"):
        if not (path.is_dir() and (path / "config.json").exists()):
            return (f"{loader} reads Hugging Face folders (with a config.json), and {path.name} is "
                    f"{'a GGUF file: choose llama.cpp' if path.suffix.lower() == '.gguf' else 'not one'}.")
        if loader == "GPTQ" and not is_gptq_folder(path):
            return f"{path.name} is not a GPTQ-quantized folder; choose Transformers for it."
    return None


def list_models(model_dir: str | os.PathLike) -> list[ModelEntry]:
    root = Path(model_dir)
    if not root.is_dir():
        return []
    entries = []
    for path in sorted(root.iterdir(), key=lambda p: p.name.lower()):
        if path.name.startswith(".") or path.name == "README.md":
            continue
        loader = detect_loader(path)
        if loader is None and path.is_file():
            continue
        size = path.stat().st_size if path.is_file() else _folder_size(path)
        problem = "" if loader else "not recognised as a model (no .gguf file, no config.json)"
        entries.append(ModelEntry(path.name, path, loader, size, problem))
    return entries


def resolve_model_path(name: str, model_dir: str | os.PathLike) -> Path:
    """A name inside model_dir, or a path as given. A folder holding GGUF files resolves
    to its first .gguf file. Raises FileNotFoundError with a helpful message."""
    candidates = [Path(model_dir) / name, Path(name)]
    for candidate in candidates:
        if candidate.exists():
            if candidate.is_dir() and not (candidate / "config.json").exists():
                ggufs = sorted(candidate.glob("*.gguf"))
                if ggufs:
                    return ggufs[0]
            return candidate
    available = ", ".join(e.name for e in list_models(model_dir)) or "none"
    raise FileNotFoundError(f"Model '{name}' not found in {model_dir} (available: {available}).")


def default_model(model_dir: str | os.PathLike) -> Path | None:
    preferred = Path(model_dir) / DEFAULT_MODEL_NAME
    if preferred.exists():
        return preferred
    usable = [e for e in list_models(model_dir) if e.loader]
    return usable[0].path if usable else None
