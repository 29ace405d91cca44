"""Safe handling of user-chosen file names and crash-safe writes.

Names of presets, characters and templates come from a text box in the browser,
so they are checked before they touch the disk: a name is one plain file name,
never a path, and the resolved file always stays inside its folder.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

_FORBIDDEN_CHARACTERS = set('/\\:*?"<>|')   # separators and what Windows refuses
_MAX_NAME_LENGTH = 120


class UnsafeNameError(ValueError):
    """A user-given name that could escape its folder or is not a valid file name."""


def safe_name(name) -> str:
    """Returns the name stripped of surrounding spaces, or raises UnsafeNameError."""
    if not isinstance(name, str):
        raise UnsafeNameError("The name must be text.")
    name = name.strip()
    if not name:
        raise UnsafeNameError("The name is empty.")
    if len(name) > _MAX_NAME_LENGTH:
        raise UnsafeNameError(f"The name is too long (at most {_MAX_NAME_LENGTH} characters).")
    if name.startswith("."):
        raise UnsafeNameError(f"The name {name!r} must not start with a dot.")
    if ".." in name:
        raise UnsafeNameError(f"The name {name!r} must not contain '..'.")
    bad = sorted(set(name) & _FORBIDDEN_CHARACTERS)
    if bad:
        shown = " ".join(bad)
        raise UnsafeNameError(f"The name {name!r} must not contain these characters: {shown}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise UnsafeNameError(f"The name {name!r} must not contain control characters.")
    return name


def path_in_folder(folder, name: str, suffix: str = "") -> Path:
    """The file `name + suffix` inside `folder`, after checking the name.

    The resolved path is compared with the resolved folder as a last guard, so a
    symlink or anything the name check missed cannot lead outside the folder."""
    clean = safe_name(name)
    base = Path(folder).resolve()
    candidate = (base / (clean + suffix)).resolve()
    if candidate.parent != base:
        raise UnsafeNameError(f"The name {name!r} leads outside {base}.")
    return candidate


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> None:
    """Writes the whole text or nothing: readers never see a half-written file,
    even if the process dies mid-write (temp file in the same folder, fsync, rename)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, so best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
