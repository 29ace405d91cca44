"""A GGUF file's key/value metadata, read by ggml's own GGUF reader without the weights.

llama-cpp-python ships ggml's C library (libggml-base), whose `gguf_init_from_file` with
`no_alloc` reads only the header, the metadata and the tensor table: about 10 ms for the
default model, where the `gguf` Python package's GGUFReader takes about 2 s because it
turns every vocabulary string into a numpy array. It is also the very reader llama.cpp
loads the model with, so what is read here is what the loader will see.
"""
from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

# enum gguf_type, from ggml's gguf.h
_SCALARS = {0: ctypes.c_uint8, 1: ctypes.c_int8, 2: ctypes.c_uint16, 3: ctypes.c_int16,
            4: ctypes.c_uint32, 5: ctypes.c_int32, 6: ctypes.c_float, 7: ctypes.c_bool,
            10: ctypes.c_uint64, 11: ctypes.c_int64, 12: ctypes.c_double}
_STRING, _ARRAY = 8, 9
_LONGEST_LIST = 4096         # per-layer arrays are far shorter; per-token tables far longer


class GgufReadError(ValueError):
    """The file is not a GGUF file ggml can read."""


class _InitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


@functools.cache
def _ggml():
    import llama_cpp
    from llama_cpp._ctypes_extensions import load_shared_library

    lib = load_shared_library("ggml-base", Path(llama_cpp.__file__).parent / "lib")
    ctx, key = ctypes.c_void_p, ctypes.c_int64
    for name, restype, argtypes in [
        ("gguf_init_from_file", ctx, [ctypes.c_char_p, _InitParams]),
        ("gguf_free", None, [ctx]),
        ("gguf_get_n_kv", ctypes.c_int64, [ctx]),
        ("gguf_get_key", ctypes.c_char_p, [ctx, key]),
        ("gguf_get_kv_type", ctypes.c_int, [ctx, key]),
        ("gguf_get_arr_type", ctypes.c_int, [ctx, key]),
        ("gguf_get_arr_n", ctypes.c_size_t, [ctx, key]),
        ("gguf_get_arr_data", ctypes.c_void_p, [ctx, key]),
        ("gguf_get_val_data", ctypes.c_void_p, [ctx, key]),
        ("gguf_get_val_str", ctypes.c_char_p, [ctx, key]),
    ]:
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


def read_metadata(path: str | os.PathLike) -> dict[str, object]:
    """Every metadata key with its value: numbers, booleans and strings as Python values,
    short numeric arrays (per-layer values) as lists. String arrays and per-token tables
    (the vocabulary, the merges, token types) are given as their length only: building
    them is what makes reading metadata slow, and their sizes are all a caller needs."""
    path = Path(path)
    stat = path.stat()
    return dict(_read_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=32)
def _read_cached(path: str, _size: int, _mtime: int) -> tuple[tuple[str, object], ...]:
    lib = _ggml()
    handle = lib.gguf_init_from_file(path.encode(), _InitParams(True, None))
    if not handle:
        raise GgufReadError(f"{Path(path).name} is not a GGUF file that llama.cpp can read.")
    try:
        return tuple((lib.gguf_get_key(handle, i).decode("utf-8", errors="replace"), _value(lib, handle, i))
                     for i in range(lib.gguf_get_n_kv(handle)))
    finally:
        lib.gguf_free(handle)


def _value(lib, handle, key: int) -> object:
    kind = lib.gguf_get_kv_type(handle, key)
    if kind == _STRING:
        return lib.gguf_get_val_str(handle, key).decode("utf-8", errors="replace")
    if kind == _ARRAY:
        count = lib.gguf_get_arr_n(handle, key)
        item = _SCALARS.get(lib.gguf_get_arr_type(handle, key))
        if item is None or count > _LONGEST_LIST:     # strings, nested or per-token: the length
            return count
        if count == 0:
            return []
        return list((item * count).from_address(lib.gguf_get_arr_data(handle, key)))
    scalar = _SCALARS.get(kind)
    return scalar.from_address(lib.gguf_get_val_data(handle, key)).value if scalar else None
