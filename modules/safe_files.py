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


# ---- folders of named files (presets, characters, templates) ------------------------

def list_names(folder, suffixes: tuple[str, ...]) -> list[str]:
    """Names (without suffix) of the files in `folder` ending in one of `suffixes`,
    sorted case-insensitively. Only looks at file names, never at contents, so one
    broken file cannot break the list. Hidden files (like our temp files) are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = set()
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.suffix.lower() not in suffixes or not entry.is_file():
            continue
        try:
            names.add(safe_name(entry.name[: -len(entry.suffix)]))
        except UnsafeNameError:
            continue
    return sorted(names, key=str.casefold)


def find_named_file(folder, name: str, suffixes: tuple[str, ...]) -> Path | None:
    """The existing file for `name` with the first matching suffix, or None."""
    for suffix in suffixes:
        path = path_in_folder(folder, name, suffix)
        if path.is_file():
            return path
    return None


def read_yaml_mapping(path, error_class=ValueError) -> dict:
    """Reads a YAML file that must hold a mapping (an empty file is an empty mapping).
    Raises error_class with the file name and line for broken YAML."""
    import yaml   # imported here so modules that only check names don't need PyYAML

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error_class(f"{path.name}: not a UTF-8 text file.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error_class(f"{path.name}: invalid YAML{where}: {problem}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error_class(f"{path.name}: expected 'key: value' lines, found a {type(data).__name__}.")
    return data
