"""Backends. Each module here turns model files into a loaders.base.Backend.

Each loader is described once in loaders/specs.py (its fields, detection and load
function); LOADERS lists their names. The load functions are imported lazily so that
starting the server does not import torch unless a model needs it.
"""
from __future__ import annotations

from loaders.base import Backend, ModelLoadError
from loaders.settings import LoadSettings
from loaders.specs import LOADER_NAMES as LOADERS
from loaders.specs import load as _load


def load_backend(loader: str, path: str, settings: LoadSettings, progress=None) -> Backend:
    """progress(fraction: float, message: str) is called while loading, if given."""
    return _load(loader, path, settings, progress)
