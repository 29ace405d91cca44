"""Named files of one kind (presets, characters, instruction templates, prompts) in two scopes.

shared   the project folders (presets/, characters/, ...) laid out as text-generation-webui
         keeps them. Everyone reads them; only an admin writes or deletes them. The check is
         here, in the store, so a handler that forgets it (or a client calling a queue
         endpoint directly) still cannot change what everyone uses.
private  <data dir>/users/<owner folder>/<kind>/, one folder per owner (a user name, or a
         browser's random key without accounts). Only that owner sees them, and a private
         file wins over a shared one of the same name for its owner.

The kind modules (presets, characters, ...) keep their file formats and build on this.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from modules.roles import BROWSER_OWNER_PREFIX, Identity, require_admin
from modules.safe_files import (
    atomic_write_text, find_named_file, list_names, path_in_folder, read_yaml_mapping,
)

SHARED = "shared"
PRIVATE = "private"

# Code run on the machine itself (scripts, tests, reading --settings at start-up) when it
# hands a plain folder to the kind modules. Never derived from a web request: handlers get
# their Identity from roles.AccessPolicy.identify.
LOCAL_ADMIN = Identity(owner="local", user=None, address=None, is_admin=True)


@dataclass(frozen=True)
class Entry:
    """One name as a given person sees it."""
    name: str
    scope: str          # SHARED or PRIVATE
    path: Path | None   # the file (None only in listings, which read names, not contents)
    writable: bool      # may the person who asked change or delete it

    @property
    def label(self) -> str:
        """How a dropdown shows it: private files marked, shared ones plain as before."""
        return f"{self.name} (private)" if self.scope == PRIVATE else self.name


class NamedFiles:
    """A folder of named files with one set of suffixes (the first is what new files get),
    in the shared and the private scope. `error` is the kind's exception class (PresetError,
    ...), raised for missing or unreadable files; `companions` are suffixes of files that
    belong to a name and go with it on delete (a character's picture)."""

    def __init__(self, kind: str, shared_folder, data_dir=None, *, suffixes: tuple[str, ...],
                 noun: str, error: type[Exception] = ValueError, companions: tuple[str, ...] = ()):
        self.kind = kind
        self.shared_folder = Path(shared_folder)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.suffixes = suffixes
        self.noun = noun
        self.error = error
        self.companions = companions

    @property
    def default_scope(self) -> str:
        """Where a save goes unless the caller asks: private wherever private folders exist."""
        return PRIVATE if self.data_dir is not None else SHARED

    def folder(self, scope: str, identity: Identity | None = None) -> Path:
        if scope == SHARED:
            return self.shared_folder
        if scope != PRIVATE:
            raise ValueError(f"Unknown scope {scope!r}: expected {SHARED!r} or {PRIVATE!r}.")
        if identity is None:
            raise PermissionError("Private files need to know whose they are.")
        if self.data_dir is None:
            raise self.error(f"This server keeps no private {self.noun}s (no data folder).")
        return self.data_dir / "users" / owner_folder(identity.owner) / self.kind

    # ---- reading ----------------------------------------------------------------------------

    def entries(self, identity: Identity | None = None) -> list[Entry]:
        """The shared names and, with an identity, that owner's private ones (which win on a
        shared name), sorted case-insensitively. Looks at file names only, so one broken
        file cannot break the list."""
        is_admin = bool(identity and identity.is_admin)
        found = {name: Entry(name, SHARED, None, is_admin)
                 for name in list_names(self.shared_folder, self.suffixes)}
        if identity is not None and self.data_dir is not None:
            for name in list_names(self.folder(PRIVATE, identity), self.suffixes):
                found[name] = Entry(name, PRIVATE, None, True)
        return sorted(found.values(), key=lambda entry: entry.name.casefold())

    def names(self, identity: Identity | None = None) -> list[str]:
        return [entry.name for entry in self.entries(identity)]

    def find(self, name: str, identity: Identity | None = None,
             scope: str | None = None) -> Entry | None:
        """The file this person gets under `name`: their private one, else the shared one
        (or only `scope`). Raises UnsafeNameError for names that could leave the folder."""
        for each in self._scopes(identity, scope):
            path = find_named_file(self.folder(each, identity), name, self.suffixes)
            if path is not None:
                writable = each == PRIVATE or bool(identity and identity.is_admin)
                return Entry(path.name[: -len(path.suffix)], each, path, writable)
        return None

    def get(self, name: str, identity: Identity | None = None, scope: str | None = None) -> Entry:
        entry = self.find(name, identity, scope)
        if entry is None:
            raise self.error(f"There is no {self.noun} named {name!r}.")
        return entry

    def read_text(self, entry: Entry) -> str:
        try:
            return entry.path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise self.error(f"{entry.path.name}: not a UTF-8 text file.") from None

    def read_yaml(self, entry: Entry) -> dict:
        return read_yaml_mapping(entry.path, self.error)

    def _scopes(self, identity, scope) -> tuple[str, ...]:
        if scope is not None:
            return (scope,)
        if identity is not None and self.data_dir is not None:
            return (PRIVATE, SHARED)
        return (SHARED,)

    # ---- writing ----------------------------------------------------------------------------

    def writable_folder(self, identity: Identity, scope: str) -> Path:
        """The folder `identity` may write to in `scope`. Shared needs an admin (NotAdmin)."""
        if not isinstance(identity, Identity):
            raise PermissionError(f"Changing {self.noun}s needs to know who is asking.")
        if scope == SHARED:
            require_admin(identity, f"change or delete the shared {self.noun}s")
        return self.folder(scope, identity)

    def target(self, name: str, identity: Identity, scope: str, suffix: str | None = None) -> Path:
        """The path to write `name` to, after the permission and name checks."""
        return path_in_folder(self.writable_folder(identity, scope), name, suffix or self.suffixes[0])

    def write_text(self, name: str, text: str, identity: Identity, scope: str,
                   suffix: str | None = None) -> Path:
        """Writes the whole file or nothing, then removes the name's files with the other
        suffixes there: a stale "x.yml" next to a new "x.yaml" would make the name ambiguous."""
        path = self.target(name, identity, scope, suffix)
        atomic_write_text(path, text)
        for other in self.suffixes:
            stale = path.with_name(path.stem + other)
            if stale != path and stale.is_file():
                stale.unlink()
        return path

    def write_yaml(self, name: str, mapping: dict, identity: Identity, scope: str) -> Path:
        return self.write_text(name, dump_yaml(mapping), identity, scope)

    def delete(self, name: str, identity: Identity, scope: str | None = None) -> Entry:
        """Deletes the file this person sees under `name` (their private one first), in
        every suffix, with its companion files. Returns what was deleted."""
        entry = self.get(name, identity, scope)
        folder = self.writable_folder(identity, entry.scope)
        for suffix in self.suffixes + self.companions:
            path_in_folder(folder, entry.name, suffix).unlink(missing_ok=True)
        return entry


def as_store(files, identity: Identity | None, make_store) -> tuple[NamedFiles, Identity | None]:
    """What the kind modules' `files` argument means: a NamedFiles store, used with the
    caller's identity, or a plain folder (the legacy form: scripts, tests, --settings), which
    is the shared scope of a store without private folders, used by the machine's own admin."""
    if isinstance(files, NamedFiles):
        return files, identity
    return make_store(files), identity or LOCAL_ADMIN


def owner_folder(owner: str) -> str:
    """A folder name for an owner that is always one safe path part. Hashed because a browser
    key is a secret (it should not show in a directory listing) and because two user names
    that look alike once cleaned ("a b", "a_b") must not share a folder."""
    digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16]
    if owner.startswith(BROWSER_OWNER_PREFIX):
        return f"browser-{digest}"
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", owner).strip("_-")[:40]
    return f"user-{readable}-{digest}" if readable else f"user-{digest}"


# ---- the one YAML writer -------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """Multi-line text (a character's context, a template, a grammar) as a | block, like
    text-generation-webui's files; text that is only a line break (a "\\n" stop string) as
    "\\n". PyYAML's default is hard to read for both."""


def _represent_text(dumper, text: str):
    style = None
    if "\n" in text:
        style = "|" if "\n" in text.strip() else '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_text)


def dump_yaml(mapping: dict) -> str:
    """The YAML every kind writes: keys in the given order, Unicode as is, long lines kept
    whole (PyYAML would fold them at 80 columns)."""
    return yaml.dump(mapping, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=10_000)


class Library:
    """The named files one server serves (UIContext.files): presets, characters,
    instruction templates and prompts, each with its shared project folder and the
    private folders under the data folder."""

    def __init__(self, root, data_dir):
        # Imported here: those modules build on this one.
        from modules import characters, instruction_templates, presets, prompts_store

        root = Path(root)
        self.data_dir = Path(data_dir)
        self.presets = presets.store(root / "presets", self.data_dir)
        self.characters = characters.store(root / "characters", self.data_dir)
        self.templates = instruction_templates.store(root / "instruction-templates", self.data_dir)
        self.prompts = prompts_store.store(root / "prompts", self.data_dir)
