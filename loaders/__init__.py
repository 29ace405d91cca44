"""Backends. Each module here turns model files into a loaders.base.Backend.

LOADERS maps a loader name to the function that loads it; the functions are imported
lazily so that starting the server does not import torch unless a model needs it.
"""
from __future__ import annotations

import importlib

from loaders.base import Backend, ModelLoadError
from loaders.settings import LoadSettings

# loader name -> "module:function"; each function is (path, LoadSettings, progress) -> Backend
LOADERS = {
    "llama.cpp": "loaders.llama_cpp_loader:load",
    "Transformers": "loaders.transformers_loader:load",
    "GPTQ": "loaders.gptq_loader:load",
}


def load_backend(loader: str, path: str, settings: LoadSettings, progress=None) -> Backend:
    """progress(fraction: float, message: str) is called while loading, if given."""
    if loader not in LOADERS:
        raise ModelLoadError(f"Unknown loader '{loader}'. Choose one of: {', '.join(LOADERS)}.")
    module_name, func_name = LOADERS[loader].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(f"The {loader} loader is not available: {exc}") from exc
    return getattr(module, func_name)(path, settings, progress or (lambda f, m: None))
