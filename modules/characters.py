"""Characters: <name>.yaml in text-generation-webui's format

    name: Assistant
    greeting: How can I help?
    context: |-
      The assistant is ...

with an optional picture stored next to it as <name>.png or <name>.jpg. Extra keys
(user_name, description, ...) are tolerated and kept when the character is saved again.
Shared ones live in characters/, private ones in each owner's folder (modules.named_files);
`folder` below is such a store, used with the asker's Identity, or a plain folder as before.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modules.named_files import NamedFiles, as_store
from modules.roles import Identity
from modules.safe_files import atomic_write_bytes, find_named_file, safe_name

CHARACTERS_FOLDER = Path(__file__).resolve().parents[1] / "characters"
SUFFIXES = (".yaml", ".yml")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
_OWN_KEYS = ("name", "greeting", "context")
# Older Pygmalion/TavernAI-style keys text-generation-webui also reads.
_LEGACY_KEYS = ("char_name", "char_greeting", "char_persona", "world_scenario", "example_dialogue")


class CharacterError(ValueError):
    """A character that cannot be read, saved or deleted; the message names the file."""


@dataclass
class Character:
    name: str                     # the name shown in the chat
    context: str = ""
    greeting: str = ""
    picture: Path | None = None
    extras: dict = field(default_factory=dict)   # keys we do not use, kept on save
    file_name: str = ""           # the name in characters/ (usually the same as name)

    def to_state(self) -> dict:
        """The per-session dict the UI keeps (UIContext.character_state)."""
        return {"name": self.name, "context": self.context, "greeting": self.greeting,
                "picture": str(self.picture) if self.picture else None}


def store(shared_folder=CHARACTERS_FOLDER, data_dir=None) -> NamedFiles:
    return NamedFiles("characters", shared_folder, data_dir, suffixes=SUFFIXES, noun="character",
                      error=CharacterError, companions=PICTURE_SUFFIXES)


def list_characters(folder=CHARACTERS_FOLDER, identity: Identity | None = None) -> list[str]:
    files, identity = as_store(folder, identity, store)
    return files.names(identity)


def load_character(name: str, folder=CHARACTERS_FOLDER, identity: Identity | None = None) -> Character:
    files, identity = as_store(folder, identity, store)
    entry = files.get(name, identity)
    character = character_from_mapping(files.read_yaml(entry), entry.name)
    character.picture = find_named_file(entry.path.parent, entry.name, PICTURE_SUFFIXES)
    return character


def character_from_mapping(data: dict, file_name: str) -> Character:
    """A character from the keys of a TGW character file (or the older Pygmalion keys),
    wherever the mapping came from: a stored file or an uploaded one."""
    display_name = _text(data.get("name", data.get("char_name"))) or file_name
    if "context" in data:
        context = _text(data["context"]).strip()
    else:
        context = _pygmalion_context(display_name, data)
    extras = {k: v for k, v in data.items() if k not in _OWN_KEYS and k not in _LEGACY_KEYS}
    return Character(
        name=display_name,
        context=context,
        greeting=_text(data.get("greeting", data.get("char_greeting"))).strip(),
        extras=extras,
        file_name=file_name,
    )


def find_picture(name: str, folder=CHARACTERS_FOLDER, identity: Identity | None = None) -> Path | None:
    """The picture of the character this person sees under `name`, if it has one."""
    files, identity = as_store(folder, identity, store)
    entry = files.find(name, identity)
    return find_named_file(entry.path.parent, entry.name, PICTURE_SUFFIXES) if entry else None


def save_character(name: str, context: str, greeting: str = "", picture=None,
                   folder=CHARACTERS_FOLDER, identity: Identity | None = None,
                   scope: str | None = None) -> Path:
    """Writes <name>.yaml to `scope` (default: private where there are private folders;
    shared needs an admin). `picture` is the path of an image file to store next to it
    (png/jpg copied as is, other formats converted to png) or None for no picture. Extra
    keys of the file this person sees under this name are kept."""
    files, identity = as_store(folder, identity, store)
    scope = scope or files.default_scope
    name = safe_name(name)
    files.writable_folder(identity, scope)   # refuse before reading the picture
    data = {"name": name, "greeting": greeting or "", "context": context or ""}
    data.update(_existing_extras(files, name, identity))
    new_picture = _read_picture(Path(picture) if picture else None)
    path = files.write_yaml(name, data, identity, scope)
    _store_picture(files, name, new_picture, identity, scope)
    return path


def delete_character(name: str, folder=CHARACTERS_FOLDER, identity: Identity | None = None,
                     scope: str | None = None) -> str:
    """Deletes the character this person sees under `name`, picture included; returns its scope."""
    files, identity = as_store(folder, identity, store)
    return files.delete(name, identity, scope).scope


# ---- helpers -------------------------------------------------------------------------

def _text(value) -> str:
    return "" if value is None else str(value)


def _pygmalion_context(name: str, data: dict) -> str:
    # Mirrors text-generation-webui's reading of the older character format.
    parts = []
    if data.get("char_persona"):
        parts.append(f"{name}'s Persona: {data['char_persona']}")
    if data.get("world_scenario"):
        parts.append(f"Scenario: {data['world_scenario']}")
    if data.get("example_dialogue"):
        parts.append(_text(data["example_dialogue"]).strip())
    return "\n".join(parts).strip()


def _existing_extras(files: NamedFiles, name: str, identity) -> dict:
    existing = files.find(name, identity)
    if existing is None:
        return {}
    try:
        data = files.read_yaml(existing)
    except CharacterError:
        return {}   # a broken old file is replaced, not a reason to refuse the save
    return {k: v for k, v in data.items() if k not in _OWN_KEYS}


def _read_picture(source: Path | None) -> tuple[str, bytes] | None:
    """(suffix to store under, image bytes), or None for no picture. Read before anything
    is written so a bad picture leaves the character untouched."""
    if source is None:
        return None
    if not source.is_file():
        raise CharacterError(f"The picture {source.name!r} does not exist.")
    # What the bytes are decides, not the name: a text file renamed .png is refused, and a
    # PNG named .jpg is stored as the PNG it is.
    data = source.read_bytes()
    kind = _image_format(source.name, data)
    if kind == "PNG":
        return ".png", data
    if kind == "JPEG":
        return ".jpg", data
    return ".png", _convert_to_png(source)


def _image_format(name: str, data: bytes) -> str:
    """The image format Pillow finds in `data` after checking its structure (PNG's
    chunk checksums, JPEG's markers); CharacterError when it is not a readable image."""
    import io

    try:
        from PIL import Image
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            image.verify()
        return kind or ""
    except Exception as exc:   # PIL raises many kinds for unreadable files
        raise CharacterError(f"The picture {name!r} could not be read as an image: {exc}") from None


def _store_picture(files: NamedFiles, name: str, picture: tuple[str, bytes] | None,
                   identity, scope: str) -> None:
    keep = None
    if picture is not None:
        suffix, data = picture
        keep = files.target(name, identity, scope, suffix)
        atomic_write_bytes(keep, data)
    for suffix in PICTURE_SUFFIXES:   # drop the old picture in another format, if any
        other = files.target(name, identity, scope, suffix)
        if other != keep:
            other.unlink(missing_ok=True)


def _convert_to_png(source: Path) -> bytes:
    import io

    try:
        from PIL import Image
        with Image.open(source) as image:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            return buffer.getvalue()
    except Exception as exc:   # PIL raises many kinds for unreadable files
        raise CharacterError(f"The picture {source.name!r} could not be read as an image: {exc}") from None
