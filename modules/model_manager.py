"""Loading, unloading and switching the model behind the scheduler.

One model is loaded at a time. A switch ends the generations running on the old model
with a message to their users, frees it, then loads the new one; if the new one fails,
the previous model is loaded back so the server keeps serving.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from loaders import specs
from loaders.base import Backend, ModelLoadError
from loaders.settings import LoadSettings
from modules import model_files
from modules.scheduler import Scheduler

log = logging.getLogger(__name__)

SWITCH_MESSAGE = "The model was switched or unloaded while this reply was being written."


_M_ARENA_MAX = -8          # mallopt parameter number, from glibc's malloc.h


def _limit_malloc_arenas() -> None:
    """One glibc malloc arena for the whole process.

    By default every thread that allocates while another holds the lock gets its own
    arena (up to 8 per core): the scheduler thread, torch's and llama.cpp's workers.
    malloc_trim() gives back only the free pages inside those extra arenas, not their
    free top chunk, which glibc lets grow to 64 MiB each once big tensors have been
    freed; which thread lands in which arena changes from load to load, so switching
    models left tens of MiB more resident each time with nothing allocated. With a
    single arena malloc_trim() returns all of it (bench/results/model_cycle.md). The
    worker threads here allocate seldom (tensors, under the GIL; llama.cpp and ggml
    keep their own buffers), so they rarely wait on the shared arena's lock.
    An explicit MALLOC_ARENA_MAX in the environment wins. Set at import, before the
    scheduler and the model libraries start their threads."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):      # not glibc (musl, ...): nothing to tune
        pass


_limit_malloc_arenas()


def _return_freed_memory() -> None:
    """glibc keeps freed heap pages for reuse; give them back so an unloaded model's
    memory really leaves the process (what users see in top). Call it only once the
    model's objects are gone: what is freed after the trim stays resident."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    torch = sys.modules.get("torch")      # only when a Hugging Face model was ever loaded
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


@dataclass
class LoadResult:
    ok: bool
    message: str
    seconds: float = 0.0


class ModelManager:
    def __init__(self, scheduler: Scheduler, model_dir: str | Path):
        self.scheduler = scheduler
        self.model_dir = Path(model_dir)
        self._lock = threading.Lock()          # one load/unload at a time
        self.current_path: Path | None = None
        self.current_settings: LoadSettings | None = None
        self.last_error: str = ""

    # ---- what is loaded ------------------------------------------------------------------
    @property
    def backend(self) -> Backend | None:
        return self.scheduler.backend

    @property
    def info(self):
        backend = self.backend
        return backend.info if backend else None

    def current_chat_template(self) -> str | None:
        info = self.info
        return info.chat_template if info else None

    def status_line(self) -> str:
        info = self.info
        if info is None:
            return f"No model loaded. {self.last_error}".strip()
        return (f"{info.name} ({info.loader}), context {info.n_ctx} tokens per sequence, "
                f"{info.max_sequences} sequences at once.")

    # ---- actions ---------------------------------------------------------------------------
    def load(self, name_or_path: str | Path, settings: LoadSettings | None = None,
             progress=None) -> LoadResult:
        settings = settings or LoadSettings()
        progress = progress or (lambda fraction, message: None)
        with self._lock:
            found = self._find(name_or_path, settings)
            if isinstance(found, str):
                return self._failed(found)
            path, loader = found
            problem = self._refusal(loader, path, settings)
            if problem:
                kept = f" {self._loaded_name()} stays loaded." if self.current_settings else ""
                return self._failed(problem + kept)
            if path is None:        # a model elsewhere takes no memory here: reach it first
                return self._switch_to_remote(loader, settings, progress)
            previous = (self.current_path, self.current_settings)
            self._unload_locked()
            progress(0.0, f"Loading {path.name} with {loader}")
            started = time.perf_counter()
            rss_before = psutil.Process().memory_info().rss
            try:
                backend = specs.load(loader, str(path), settings, progress)
            except (ModelLoadError, ValueError, OSError, RuntimeError) as exc:
                message = str(exc)
                if previous[1] is not None and previous[0] != path:
                    message += self._restore(previous)
                return self._failed(message)
            self.scheduler.swap_backend(backend, SWITCH_MESSAGE)
            self.current_path, self.current_settings = path, settings
            seconds = time.perf_counter() - started
            grown = (psutil.Process().memory_info().rss - rss_before) / 2**20
            self.last_error = ""
            progress(1.0, "Loaded")
            return LoadResult(True, f"Loaded {self._loaded_name()} with {loader} in {seconds:.1f} s "
                                    f"(memory +{grown:.0f} MiB).", seconds)

    def _switch_to_remote(self, loader: str, settings: LoadSettings, progress) -> LoadResult:
        """Connects to the remote model while the current one keeps serving, then switches:
        a wrong address, key or model name never costs everyone the working model."""
        progress(0.0, f"Connecting with {loader}")
        started = time.perf_counter()
        try:
            backend = specs.load(loader, "", settings, progress)
        except (ModelLoadError, ValueError, OSError, RuntimeError) as exc:
            kept = f" {self._loaded_name()} stays loaded." if self.current_settings else ""
            return self._failed(str(exc) + kept)
        self._unload_locked()
        self.scheduler.swap_backend(backend, SWITCH_MESSAGE)
        self.current_path, self.current_settings = None, settings
        self.last_error = ""
        progress(1.0, "Connected")
        return LoadResult(True, f"Connected to {backend.info.name} with {loader} in "
                                f"{time.perf_counter() - started:.1f} s.", time.perf_counter() - started)

    def unload(self) -> LoadResult:
        with self._lock:
            name = self.current_path.name if self.current_path else None
            self._unload_locked()
        return LoadResult(True, f"Unloaded {name}." if name else "No model was loaded.")

    def reload(self, progress=None) -> LoadResult:
        if self.current_settings is None:
            return LoadResult(False, "No model is loaded, so there is nothing to reload.")
        return self.load(self.current_path, self.current_settings, progress)

    # ---- helpers ------------------------------------------------------------------------------
    def _find(self, name_or_path, settings: LoadSettings) -> tuple[Path | None, str] | str:
        """(the model's path, its loader), or why there is none. A loader whose model lives
        elsewhere (Remote) needs no path."""
        spec = specs.SPECS_BY_NAME.get(settings.loader or "")
        if spec is not None and not spec.reads_files:
            return None, spec.name
        try:
            path = model_files.resolve_model_path(str(name_or_path), self.model_dir)
        except FileNotFoundError as exc:
            return str(exc)
        loader = settings.loader or model_files.detect_loader(path)
        if loader is None:
            return (f"{path.name} is not a model this server can load "
                    f"(expected a .gguf file or a Hugging Face folder).")
        return path, loader

    def _loaded_name(self) -> str:
        if self.current_path is not None:
            return self.current_path.name
        info = self.info
        return info.name if info else "nothing"

    @staticmethod
    def _refusal(loader: str, path: Path | None, settings: LoadSettings) -> str | None:
        """Why this load cannot work, found before anything is unloaded: an unknown loader,
        a setting out of its range (the API passes them unchecked), files the loader cannot read."""
        if loader not in specs.SPECS_BY_NAME:
            return f"Unknown loader '{loader}'. Choose one of: {', '.join(specs.LOADER_NAMES)}."
        try:
            specs.check_settings(settings)
        except ValueError as exc:
            return str(exc)
        return model_files.loader_mismatch(path, loader) if path is not None else None

    def _unload_locked(self) -> None:
        old = self.scheduler.swap_backend(None, SWITCH_MESSAGE)
        if old is not None:
            old.unload()
        # Drop our last reference before collecting and trimming: the backend still
        # held the tokenizer and tables, freed only after the trim and so kept resident.
        del old
        self.current_path = self.current_settings = None
        # CPython's method cache keeps the last 4096 attribute names looked up, and re's cache
        # the last 512 patterns compiled; loading a Hugging Face model fills both with
        # fresh strings and patterns (one or more per weight), and each one kept pins a
        # 1 MiB allocator arena (docs/memory.md).
        sys._clear_type_cache()
        re.purge()
        gc.collect()
        _return_freed_memory()

    def _restore(self, previous) -> str:
        path, settings = previous
        name = path.name if path is not None else "(the remote server's)"
        try:
            backend = specs.load(settings.loader or model_files.detect_loader(path), str(path or ""), settings)
        except Exception as exc:        # the previous model failing now is reported, not raised
            return f" The previous model {name} could not be loaded back either: {exc}"
        self.scheduler.swap_backend(backend, SWITCH_MESSAGE)
        self.current_path, self.current_settings = path, settings
        return f" The previous model {backend.info.name if path is None else name} was loaded back."

    def _failed(self, message: str) -> LoadResult:
        self.last_error = message
        log.error("Model load failed: %s", message)
        return LoadResult(False, message)
