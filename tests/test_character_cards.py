"""Character cards: SillyTavern V1/V2/V3 cards (PNG and JSON) and TGW YAML in, V2 PNG cards out.
The PNG cards are made here with Pillow, the card's text chunk after the pixels as SillyTavern
writes it; every kind of bad file gets its message."""
from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import pytest
from PIL import Image

from modules.character_cards import (BLANK_PICTURE, CardError, card_png, read_character_file)
from modules.characters import load_character, save_character

V2 = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {
    "name": "Seraphina", "description": "A guardian of the forest.\r\nShe heals travellers.",
    "personality": "gentle, protective", "scenario": "{{user}} wakes up in her glade.",
    "first_mes": "*She smiles* You're awake, {{user}}.", "mes_example": "<START>\n{{user}}: Who are you?\n"
    "{{char}}: I am Seraphina.\n", "creator_notes": "", "system_prompt": "", "post_history_instructions": "",
    "alternate_greetings": [], "tags": ["fantasy"], "creator": "someone", "character_version": "1",
    "extensions": {}}}
V2_CONTEXT = ("Seraphina's Persona: A guardian of the forest.\nShe heals travellers.\n"
              "Seraphina's personality: gentle, protective\n"
              "Scenario: {{user}} wakes up in her glade.\n"
              "<START>\n{{user}}: Who are you?\n{{char}}: I am Seraphina.")


def picture_png(colour=(200, 30, 90), size=(64, 96)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def with_text_chunk(png: bytes, keyword: str, text: str) -> bytes:
    """The PNG with a tEXt chunk added just before IEND (after the pixels), as SillyTavern does."""
    body = keyword.encode("latin-1") + b"\0" + text.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    end = png.rindex(b"IEND") - 4
    return png[:end] + chunk + png[end:]


def b64(card: dict) -> str:
    return base64.b64encode(json.dumps(card).encode("utf-8")).decode("ascii")


# ---- reading cards ----------------------------------------------------------------------------

def test_a_v2_png_card_gives_name_greeting_context_and_keeps_the_picture():
    png = with_text_chunk(picture_png(), "chara", b64(V2))
    character = read_character_file(png, "Seraphina.png")
    assert character.name == "Seraphina"
    assert character.greeting == "*She smiles* You're awake, {{user}}."
    assert character.context == V2_CONTEXT
    assert character.picture == png
    assert character.kind == "SillyTavern card (V2)"


def test_a_v3_card_is_read_from_its_ccv3_chunk_before_the_older_chara_one():
    v3 = {"spec": "chara_card_v3", "spec_version": "3.0",
          "data": dict(V2["data"], name="Seraphina III", group_only_greetings=[], assets=[])}
    png = with_text_chunk(with_text_chunk(picture_png(), "chara", b64(V2)), "ccv3", b64(v3))
    character = read_character_file(png, "card.png")
    assert (character.name, character.kind) == ("Seraphina III", "SillyTavern card (V3)")
    assert character.context == V2_CONTEXT.replace("Seraphina's", "Seraphina III's")


def test_a_v1_card_and_a_v2_json_file_read_the_same_fields():
    v1 = {key: V2["data"][key] for key in ("name", "description", "personality", "scenario", "first_mes",
                                           "mes_example")}
    from_v1 = read_character_file(json.dumps(v1).encode(), "old.json")
    from_json = read_character_file(json.dumps(V2).encode(), "new.json")
    assert (from_v1.name, from_v1.context, from_v1.greeting) == ("Seraphina", V2_CONTEXT, V2["data"]["first_mes"])
    assert (from_json.name, from_json.context, from_json.greeting) == (from_v1.name, from_v1.context,
                                                                       from_v1.greeting)
    assert from_v1.picture is None and from_v1.kind == "SillyTavern card (V1)"


def test_a_card_with_only_a_description_reads_as_tgw_reads_it():
    card = {"spec": "chara_card_v2", "data": {"name": "Bo", "description": "grumpy", "first_mes": "Yo"}}
    character = read_character_file(json.dumps(card).encode(), "bo.json")
    assert (character.context, character.greeting) == ("Bo's Persona: grumpy", "Yo")


def test_text_generation_webui_yaml_and_its_older_json_read_too():
    yaml_text = "name: Chiharu\ngreeting: Hey!\ncontext: |-\n  Chiharu is a tech geek.\n  She likes games.\n"
    character = read_character_file(yaml_text.encode(), "Chiharu.yaml")
    assert (character.name, character.greeting, character.context) == (
        "Chiharu", "Hey!", "Chiharu is a tech geek.\nShe likes games.")
    pygmalion = {"char_name": "Bob", "char_greeting": "Yo", "char_persona": "grumpy", "world_scenario": "a pub"}
    character = read_character_file(json.dumps(pygmalion).encode(), "bob.json")
    assert (character.name, character.greeting, character.context) == (
        "Bob", "Yo", "Bob's Persona: grumpy\nScenario: a pub")


# ---- writing cards ----------------------------------------------------------------------------

def test_export_then_import_gives_the_same_character_and_picture(tmp_path):
    source = tmp_path / "pic.png"
    source.write_bytes(picture_png((10, 120, 200)))
    context = "Ann is a librarian.\n\nShe answers in one line: always."
    card = card_png("Ann", context, "Hello, {{user}}!", source)
    back = read_character_file(card, "Ann.png")
    assert (back.name, back.context, back.greeting) == ("Ann", context, "Hello, {{user}}!")
    with Image.open(io.BytesIO(card)) as image, Image.open(source) as original:
        assert image.size == original.size
        assert image.convert("RGB").getpixel((5, 5)) == (10, 120, 200)


def test_the_exported_card_is_what_tgw_and_sillytavern_readers_look_for():
    card = card_png("Ann", "Ann is a librarian.", "Hello!")
    with Image.open(io.BytesIO(card)) as image:           # TGW's check_tavern_character reads info["chara"]
        data = json.loads(base64.b64decode(image.info["chara"]))
        assert image.size == BLANK_PICTURE[0]            # no picture: a plain one
    assert data["spec"] == "chara_card_v2" and data["spec_version"] == "2.0"
    assert data["data"]["name"] == data["name"] == "Ann"
    assert data["data"]["description"] == "Ann is a librarian."
    assert data["data"]["first_mes"] == "Hello!"
    for key in ("personality", "scenario", "mes_example", "creator_notes", "system_prompt",
                "post_history_instructions", "creator", "character_version"):
        assert data["data"][key] == ""
    assert data["data"]["alternate_greetings"] == [] and data["data"]["tags"] == []


def test_exporting_over_an_older_card_replaces_its_chunk(tmp_path):
    old = tmp_path / "old.png"
    old.write_bytes(with_text_chunk(picture_png(), "chara", b64(V2)))
    back = read_character_file(card_png("Ann", "new context", "hi", old), "Ann.png")
    assert (back.name, back.context) == ("Ann", "new context")


def test_a_jpeg_picture_and_unicode_text_survive_export(tmp_path):
    jpeg = tmp_path / "pic.jpg"
    Image.new("RGB", (32, 32), (0, 200, 0)).save(jpeg, format="JPEG")
    back = read_character_file(card_png("Étoile", "Parle français. 日本語も。🙂", "Bonjour !", jpeg), "x.png")
    assert (back.name, back.context, back.greeting) == ("Étoile", "Parle français. 日本語も。🙂", "Bonjour !")


def test_an_imported_card_saves_through_the_character_store_with_its_picture(tmp_path):
    png = with_text_chunk(picture_png(), "chara", b64(V2))
    character = read_character_file(png, "Seraphina.png")
    upload = tmp_path / "upload.png"
    upload.write_bytes(character.picture)
    folder = tmp_path / "characters"
    save_character(character.name, character.context, character.greeting, upload, folder=folder)
    loaded = load_character("Seraphina", folder)
    assert (loaded.context, loaded.greeting) == (V2_CONTEXT, V2["data"]["first_mes"])
    assert loaded.picture.read_bytes() == png


# ---- bad files ---------------------------------------------------------------------------------

def damaged(png: bytes) -> bytes:
    at = png.index(b"IDAT") + 10
    return png[:at] + bytes([png[at] ^ 0xFF]) + png[at + 1:]


BAD_FILES = {
    "text named .png": (b"just some text", "x.png", "is not a PNG image"),
    "a JPEG named .png": (None, "x.png", "is not a PNG image"),
    "PNG without a card": (picture_png(), "x.png", "no 'chara' text chunk"),
    "bad base64": (with_text_chunk(picture_png(), "chara", "not*base64!"), "x.png", "not valid base64"),
    "base64 of not JSON": (with_text_chunk(picture_png(), "chara", base64.b64encode(b"{oops").decode()),
                           "x.png", "not valid JSON"),
    "damaged PNG": (damaged(with_text_chunk(picture_png(), "chara", b64(V2))), "x.png", "damaged or cut short"),
    "cut short": (with_text_chunk(picture_png(), "chara", b64(V2))[:-40], "x.png", "damaged or cut short"),
    "JSON not a card": (b'{"hello": "world"}', "x.json", "not a character card"),
    "JSON a list": (b'[1, 2]', "x.json", "should be an object"),
    "unknown spec": (b'{"spec": "chara_card_v9", "data": {}}', "x.json", "a kind this cannot read"),
    "V2 without data": (b'{"spec": "chara_card_v2"}', "x.json", 'no "data" object'),
    "a number for text": (json.dumps({"spec": "chara_card_v2", "data": {"name": "A", "description": 5}}).encode(),
                          "x.json", "'description' should be text"),
    "no name": (json.dumps({"spec": "chara_card_v2", "data": {"name": " ", "description": "d"}}).encode(),
                "x.json", "has no name"),
    "YAML not a mapping": (b"- a\n- b\n", "x.yaml", "not a character"),
    "broken YAML": (b"name: [unclosed\n", "x.yaml", "not valid YAML"),
    "another kind of file": (b"hello", "notes.txt", "choose a character card"),
    "not UTF-8": (b"\xff\xfe{}", "x.json", "not UTF-8"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_bad_file_gets_a_clear_message(kind):
    data, name, message = BAD_FILES[kind]
    if data is None:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, format="JPEG")
        data = buffer.getvalue()
    with pytest.raises(CardError, match=message):
        read_character_file(data, name)


def test_an_oversized_file_is_refused_before_it_is_read():
    with pytest.raises(CardError, match="may be at most"):
        read_character_file(b"\0" * 2048, "x.png", max_bytes=1024)


def test_a_picture_with_too_many_pixels_is_refused_before_it_is_decoded():
    buffer = io.BytesIO()
    Image.new("1", (5000, 4000)).save(buffer, format="PNG")      # 20 M pixels in a small file
    with pytest.raises(CardError, match="pixels"):
        read_character_file(with_text_chunk(buffer.getvalue(), "chara", b64(V2)), "big.png")
