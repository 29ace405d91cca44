"""Character cards: SillyTavern's PNG and JSON cards in, V2 PNG cards out.

A card is JSON about a character, on its own (.json) or base64 inside a PNG text chunk
of the character's picture: "chara" for V1 and V2 cards, "ccv3" for V3 (which also write
"chara" for older readers; "ccv3" wins). V1 has the fields at the top; V2 and V3 nest them
under "data" with a "spec" of chara_card_v2 / chara_card_v3:

    name, description, personality, scenario, first_mes, mes_example, ...

They become our character as text-generation-webui's card import makes them: the name,
the greeting from first_mes, and a context of "<name>'s Persona: <description>", the
personality (which TGW drops), "Scenario: <scenario>" and the example dialogue. A card
this module wrote says in data.extensions that its description is the whole context, so
it comes back unchanged. TGW's own YAML characters (and its older JSON) are read too.

Pillow reads and writes the PNG chunks (checking their checksums); nothing is stored here:
the caller saves what comes back through modules.characters, with its scope rules.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from modules.characters import character_from_mapping

DEFAULT_MAX_BYTES = 10 * 2**20
# A card's picture is decoded to read chunks written after the pixels; this bounds the
# memory that takes (16 M pixels is 64 MiB as RGBA; cards are usually under 2 M).
MAX_CARD_PIXELS = 16_000_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BLANK_PICTURE = ((400, 600), (72, 84, 104))       # size and colour of a card with no picture
# Our own key in data.extensions (the spec's place for an application's data).
EXTENSION = "llm_workbench"
CARD_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
SPECS = {"chara_card_v2": "V2", "chara_card_v3": "V3"}


class CardError(ValueError):
    """A file that is not a character this can read; the message says what is wrong."""


@dataclass
class CardCharacter:
    name: str
    context: str
    greeting: str
    picture: bytes | None = None      # the card's PNG, kept as the character's picture
    kind: str = ""                    # "SillyTavern card (V2)", ... for the status line


# ---- reading ----------------------------------------------------------------------------------

def read_character_file(data: bytes, file_name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> CardCharacter:
    """The character in an uploaded .png card, .json card or TGW .yaml character."""
    shown = Path(file_name or "the file").name
    if len(data) > max_bytes:
        raise CardError(f"{shown} is {len(data) / 2**20:.1f} MiB; a character file may be at most "
                        f"{max_bytes / 2**20:.0f} MiB.")
    suffix = Path(file_name or "").suffix.lower()
    if data.startswith(PNG_SIGNATURE):
        return read_png_card(data, shown)
    if suffix == ".png":
        raise CardError(f"{shown} is not a PNG image, so it cannot be a character card.")
    if suffix == ".json":
        return card_character(_json(_utf8(data, shown), shown), shown)
    if suffix in (".yaml", ".yml"):
        return _tgw_yaml(_utf8(data, shown), shown)
    raise CardError(f"{shown}: choose a character card (.png or .json) or a text-generation-webui "
                    "character (.yaml).")


def read_png_card(data: bytes, shown: str = "the picture") -> CardCharacter:
    text = _png_text(data, shown)
    chunk = "ccv3" if "ccv3" in text else "chara" if "chara" in text else None
    if chunk is None:
        raise CardError(f"{shown} is a PNG picture without a character in it (no 'chara' text chunk): "
                        "it is not a character card.")
    try:
        decoded = base64.b64decode(text[chunk].strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CardError(f"{shown}: the character in the picture is not valid base64.") from None
    card = card_character(_json(_utf8(decoded, shown), shown), shown)
    card.picture = data
    return card


def card_character(card, shown: str = "the card") -> CardCharacter:
    """Our character from a card's JSON (V1, V2, V3), or from TGW's older JSON format."""
    if not isinstance(card, dict):
        raise CardError(f"{shown} is JSON but not a character card: it should be an object.")
    spec = card.get("spec")
    if spec is not None:
        if spec not in SPECS:
            raise CardError(f"{shown} is a card of a kind this cannot read (spec {str(spec)[:40]!r}); "
                            f"it reads {', '.join(SPECS)} and V1 cards.")
        fields = card.get("data")
        if not isinstance(fields, dict):
            raise CardError(f'{shown}: the card has no "data" object with the character in it.')
        kind = f"SillyTavern card ({SPECS[spec]})"
    elif "char_name" in card or ("context" in card and "name" in card):
        return _from_tgw(card, shown, "text-generation-webui character")
    elif "name" in card and any(key in card for key in CARD_FIELDS[1:]):
        fields, kind = card, "SillyTavern card (V1)"
    else:
        raise CardError(f"{shown} is JSON but not a character card: it has no character name and "
                        "description (V1) or spec and data (V2, V3).")
    values = {key: _field(fields, key, shown) for key in CARD_FIELDS}
    if not values["name"].strip():
        raise CardError(f"{shown}: the card's character has no name.")
    extension = fields.get("extensions", {}).get(EXTENSION) if isinstance(fields.get("extensions"), dict) else None
    whole = isinstance(extension, dict) and extension.get("description_is_context") is True
    return CardCharacter(name=values["name"].strip(), context=card_context(values, whole),
                         greeting=values["first_mes"].strip(), kind=kind)


def card_context(values: dict, description_is_context: bool = False) -> str:
    """The context TGW builds from a card (its persona, scenario and example lines), with
    the personality too."""
    name = values["name"].strip()
    parts = []
    if values["description"].strip():
        parts.append(values["description"] if description_is_context
                     else f"{name}'s Persona: {values['description']}")
    if values["personality"].strip():
        parts.append(f"{name}'s personality: {values['personality']}")
    if values["scenario"].strip():
        parts.append(f"Scenario: {values['scenario']}")
    if values["mes_example"].strip():
        parts.append(values["mes_example"].strip())
    return "\n".join(part.strip() for part in parts)


# ---- writing ---------------------------------------------------------------------------------

def card_json(name: str, context: str, greeting: str) -> dict:
    """A V2 card of our character, with the V1 fields at the top for older readers."""
    fields = {"name": name, "description": context, "personality": "", "scenario": "",
              "first_mes": greeting, "mes_example": ""}
    data = dict(fields, creator_notes="", system_prompt="", post_history_instructions="",
                alternate_greetings=[], tags=[], creator="", character_version="",
                extensions={EXTENSION: {"description_is_context": True}})
    return dict(fields, spec="chara_card_v2", spec_version="2.0", data=data)


def card_png(name: str, context: str, greeting: str, picture: str | Path | None = None) -> bytes:
    """A V2 PNG card: the character's picture (or a plain one) carrying the card in a
    'chara' tEXt chunk. Text chunks of the picture (an older card) are not copied."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    payload = json.dumps(card_json(name, context, greeting), ensure_ascii=False).encode("utf-8")
    info = PngInfo()
    info.add_text("chara", base64.b64encode(payload).decode("ascii"))
    image = _open_picture(Path(picture)) if picture else Image.new("RGB", *BLANK_PICTURE)
    with image:
        if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
            image = image.convert("RGBA")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


# ---- helpers ---------------------------------------------------------------------------------

def _png_text(data: bytes, shown: str) -> dict:
    """The PNG's text chunks, read by Pillow after checking the picture is whole."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise CardError(f"{shown} is not a PNG image, so it cannot be a character card.")
            width, height = image.size
            if width * height > MAX_CARD_PIXELS:
                raise CardError(f"{shown} is {width}×{height} pixels; a card's picture may have at most "
                                f"{MAX_CARD_PIXELS:,} pixels.")
            return dict(image.text)          # loads the image: text chunks may follow the pixels
    except CardError:
        raise
    except Exception:                        # Pillow raises many kinds for damaged files
        raise CardError(f"{shown} could not be read as a PNG image: it is damaged or cut short.") from None


def _open_picture(path: Path):
    from PIL import Image

    try:
        image = Image.open(path)
        image.load()
        return image
    except Exception as exc:                 # a picture removed or damaged since it was saved
        raise CardError(f"The character's picture {path.name!r} could not be read: {exc}") from None


def _utf8(data: bytes, shown: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CardError(f"{shown}: the character is not UTF-8 text.") from None


def _json(text: str, shown: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CardError(f"{shown}: the character is not valid JSON ({exc.msg} at line {exc.lineno}, "
                        f"column {exc.colno}).") from None
    except RecursionError:
        raise CardError(f"{shown}: the JSON is nested too deeply to be a character card.") from None


def _field(fields: dict, key: str, shown: str) -> str:
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CardError(f"{shown}: the card's {key!r} should be text.")
    return value.replace("\r\n", "\n")


def _tgw_yaml(text: str, shown: str) -> CardCharacter:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CardError(f"{shown} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CardError(f"{shown} is not a character: it should hold keys such as name, greeting and context.")
    return _from_tgw(data, shown, "text-generation-webui character")


def _from_tgw(data: dict, shown: str, kind: str) -> CardCharacter:
    for key in ("name", "char_name", "context", "greeting", "char_greeting", "char_persona",
                "world_scenario", "example_dialogue"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise CardError(f"{shown}: the character's {key!r} should be text.")
    character = character_from_mapping(data, "")
    if not character.name.strip():
        raise CardError(f"{shown}: the character has no name.")
    return CardCharacter(name=character.name.strip(), context=character.context,
                         greeting=character.greeting, kind=kind)
