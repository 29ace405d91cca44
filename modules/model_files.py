"""Finding models on disk and deciding which loader each one needs.

Which loader claims a file or folder, and why a chosen loader cannot read one, is each
loader's own rule in loaders/specs.py: a .gguf file goes to llama.cpp, a folder whose
config or quantize_config says GPTQ to the GPTQ loader, any other Hugging Face folder to
Transformers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from loaders import specs

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
        spec = specs.SPECS_BY_NAME.get(self.loader or "")
        return spec.format if spec else "unknown"


def _folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def detect_loader(path: str | os.PathLike) -> str | None:
    return specs.detect(path)


def loader_mismatch(path: str | os.PathLike, loader: str) -> str | None:
    """Why `loader` cannot read `path`, in plain words; None when it can. Checked before
    anything is unloaded, so a wrong choice never costs everyone the working model."""
    return specs.spec_for(loader).refuses(Path(path))


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
