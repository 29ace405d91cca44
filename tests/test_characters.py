import os

import pytest
import yaml

from modules.characters import (
    CharacterError, delete_character, list_characters, load_character, save_character,
)
from modules.safe_files import UnsafeNameError

def _png_1x1() -> bytes:
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.new("RGBA", (1, 1), (0, 0, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG_1x1 = _png_1x1()


def test_text_generation_webui_character_with_extra_keys_loads(tmp_path):
    (tmp_path / "Chiharu.yaml").write_text(
        "name: Chiharu Yamada\n"
        "greeting: |-\n  *Chiharu looks up*\n  Hey!\n"
        "context: |-\n  Chiharu is a tech geek.\n\n  {{user}}: Hi\n"
        "user_name: Me\n"
        "description: A geek\n")
    character = load_character("Chiharu", tmp_path)
    assert character.name == "Chiharu Yamada"
    assert character.greeting == "*Chiharu looks up*\nHey!"
    assert character.context == "Chiharu is a tech geek.\n\n{{user}}: Hi"
    assert character.extras == {"user_name": "Me", "description": "A geek"}
    assert character.file_name == "Chiharu"
    assert character.picture is None


def test_older_pygmalion_keys_build_the_context(tmp_path):
    (tmp_path / "Old.yaml").write_text(
        "char_name: Bob\nchar_greeting: Yo\nchar_persona: grumpy\nworld_scenario: a pub\n")
    character = load_character("Old", tmp_path)
    assert (character.name, character.greeting) == ("Bob", "Yo")
    assert character.context == "Bob's Persona: grumpy\nScenario: a pub"


def test_save_round_trips_and_keeps_extra_keys(tmp_path):
    (tmp_path / "Ann.yaml").write_text("name: Ann\ncontext: old\nuser_name: Me\n")
    save_character("Ann", "Line one\nLine two: with colon", "Hello, \"you\"!", folder=tmp_path)
    data = yaml.safe_load((tmp_path / "Ann.yaml").read_text())
    assert data == {"name": "Ann", "greeting": 'Hello, "you"!',
                    "context": "Line one\nLine two: with colon", "user_name": "Me"}
    character = load_character("Ann", tmp_path)
    assert character.context == "Line one\nLine two: with colon"
    assert character.to_state() == {"name": "Ann", "context": "Line one\nLine two: with colon",
                                    "greeting": 'Hello, "you"!', "picture": None}


def test_picture_is_stored_next_to_it_replaced_and_removed(tmp_path):
    folder = tmp_path / "characters"
    upload = tmp_path / "upload.png"
    upload.write_bytes(PNG_1x1)
    save_character("Pic", "ctx", picture=upload, folder=folder)
    stored = load_character("Pic", folder).picture
    assert stored == (folder / "Pic.png").resolve() and stored.read_bytes() == PNG_1x1
    # Passing the stored picture back (what the UI does when unchanged) keeps it.
    save_character("Pic", "ctx2", picture=stored, folder=folder)
    assert (folder / "Pic.png").read_bytes() == PNG_1x1
    jpg = tmp_path / "photo.jpeg"
    jpg.write_bytes(jpeg_bytes())
    save_character("Pic", "ctx", picture=jpg, folder=folder)
    assert sorted(os.listdir(folder)) == ["Pic.jpg", "Pic.yaml"]
    assert (folder / "Pic.jpg").read_bytes() == jpeg_bytes()
    save_character("Pic", "ctx", picture=None, folder=folder)
    assert os.listdir(folder) == ["Pic.yaml"]


def test_unreadable_picture_leaves_character_untouched(tmp_path):
    save_character("C", "first", folder=tmp_path)
    bad = tmp_path / "bad.webp"
    bad.write_bytes(b"not an image")
    with pytest.raises(CharacterError, match="bad.webp"):
        save_character("C", "second", picture=bad, folder=tmp_path)
    assert load_character("C", tmp_path).context == "first"


def jpeg_bytes() -> bytes:
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("name, data", [
    ("notes.png", b"These are my notes, renamed to look like a picture."),
    ("photo.jpg", b"\xff\xd8\xff this starts like a JPEG and is not one"),
    ("cut.png", PNG_1x1[:40]),                                    # a download cut short
    ("page.jpeg", b"<html><body>404 Not Found</body></html>"),
])
def test_a_picture_that_is_not_an_image_is_refused_and_nothing_changes(tmp_path, name, data):
    folder = tmp_path / "characters"
    good = tmp_path / "good.png"
    good.write_bytes(PNG_1x1)
    save_character("C", "first", picture=good, folder=folder)
    bad = tmp_path / name
    bad.write_bytes(data)
    with pytest.raises(CharacterError, match="could not be read as an image"):
        save_character("C", "second", picture=bad, folder=folder)
    character = load_character("C", folder)
    assert character.context == "first" and character.picture.read_bytes() == PNG_1x1
    assert sorted(os.listdir(folder)) == ["C.png", "C.yaml"]


def test_a_png_named_jpg_is_stored_as_the_png_it_is(tmp_path):
    misnamed = tmp_path / "photo.jpg"
    misnamed.write_bytes(PNG_1x1)
    save_character("M", "ctx", picture=misnamed, folder=tmp_path / "c")
    assert sorted(os.listdir(tmp_path / "c")) == ["M.png", "M.yaml"]


def test_delete_removes_picture_too(tmp_path):
    upload = tmp_path / "u.png"
    upload.write_bytes(PNG_1x1)
    folder = tmp_path / "c"
    save_character("D", "ctx", picture=upload, folder=folder)
    delete_character("D", folder)
    assert os.listdir(folder) == []
    with pytest.raises(CharacterError, match="no character named 'D'"):
        delete_character("D", folder)


def test_broken_yaml_names_file_and_line_and_others_still_list(tmp_path):
    (tmp_path / "Good.yaml").write_text("name: Good\ncontext: fine\n")
    (tmp_path / "Bad.yaml").write_text("name: Bad\ncontext: \"unclosed\n")
    assert list_characters(tmp_path) == ["Bad", "Good"]
    with pytest.raises(CharacterError, match=r"Bad\.yaml: invalid YAML at line \d"):
        load_character("Bad", tmp_path)
    assert load_character("Good", tmp_path).context == "fine"


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", " "])
def test_unsafe_names_are_refused_and_nothing_outside_is_touched(tmp_path, name):
    folder = tmp_path / "characters"
    folder.mkdir()
    outside = tmp_path / "escape.yaml"
    outside.write_text("name: x\n")
    with pytest.raises(UnsafeNameError):
        save_character(name, "ctx", folder=folder)
    with pytest.raises(UnsafeNameError):
        delete_character(name, folder)
    with pytest.raises(UnsafeNameError):
        load_character(name, folder)
    assert outside.read_text() == "name: x\n"
    assert os.listdir(folder) == []


def test_shipped_assistant_loads():
    assert "Assistant" in list_characters()
    assistant = load_character("Assistant")
    assert assistant.name == "Assistant" and assistant.context and assistant.greeting
