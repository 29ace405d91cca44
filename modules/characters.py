"""Characters: characters/<name>.yaml in text-generation-webui's format

    name: Assistant
    greeting: How can I help?
    context: |-
      The assistant is ...

with an optional picture stored next to it as <name>.png or <name>.jpg. Extra keys
(user_name, description, ...) are tolerated and kept when the character is saved again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from modules.safe_files import (
    atomic_write_bytes, atomic_write_text, find_named_file, list_names, path_in_folder,
    read_yaml_mapping, safe_name,
)

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


def list_characters(folder=CHARACTERS_FOLDER) -> list[str]:
    return list_names(folder, SUFFIXES)


def load_character(name: str, folder=CHARACTERS_FOLDER) -> Character:
    path = find_named_file(folder, name, SUFFIXES)
    if path is None:
        raise CharacterError(f"There is no character named {name!r}.")
    data = read_yaml_mapping(path, CharacterError)
    file_name = path.name[: -len(path.suffix)]
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
        picture=find_picture(file_name, folder),
        extras=extras,
        file_name=file_name,
    )


def find_picture(name: str, folder=CHARACTERS_FOLDER) -> Path | None:
    return find_named_file(folder, name, PICTURE_SUFFIXES)


def save_character(name: str, context: str, greeting: str = "", picture=None,
                   folder=CHARACTERS_FOLDER) -> Path:
    """Writes characters/<name>.yaml. `picture` is the path of an image file to store
    next to it (png/jpg copied as is, other formats converted to png) or None for no
    picture. Extra keys of an existing file with this name are kept."""
    name = safe_name(name)
    path = path_in_folder(folder, name, ".yaml")
    data = {"name": name, "greeting": greeting or "", "context": context or ""}
    data.update(_existing_extras(name, folder))
    new_picture = _read_picture(Path(picture) if picture else None)
    atomic_write_text(path, _character_yaml(data))
    _store_picture(name, new_picture, folder)
    return path


def delete_character(name: str, folder=CHARACTERS_FOLDER) -> None:
    path = find_named_file(folder, name, SUFFIXES)
    if path is None:
        raise CharacterError(f"There is no character named {name!r}.")
    path.unlink()
    for suffix in PICTURE_SUFFIXES:
        path_in_folder(folder, name, suffix).unlink(missing_ok=True)


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


def _existing_extras(name: str, folder) -> dict:
    existing = find_named_file(folder, name, SUFFIXES)
    if existing is None:
        return {}
    try:
        data = read_yaml_mapping(existing, CharacterError)
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
    suffix = source.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg"):
        return (".png" if suffix == ".png" else ".jpg"), source.read_bytes()
    return ".png", _convert_to_png(source)


def _store_picture(name: str, picture: tuple[str, bytes] | None, folder) -> None:
    keep = None
    if picture is not None:
        suffix, data = picture
        keep = path_in_folder(folder, name, suffix)
        atomic_write_bytes(keep, data)
    for suffix in PICTURE_SUFFIXES:   # drop the old picture in another format, if any
        other = path_in_folder(folder, name, suffix)
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


def _character_yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_CharacterDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=100)


class _CharacterDumper(yaml.SafeDumper):
    """Multi-line context and greetings as | blocks, like text-generation-webui's files."""


def _represent_text(dumper, text: str):
    style = "|" if "\n" in text.strip() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_CharacterDumper.add_representer(str, _represent_text)
