"""One store for presets, characters, instruction templates and prompts: a shared scope
(the project folders, admins write) and a private scope per owner under the data folder."""
from __future__ import annotations

import os

import pytest
import yaml

from modules import characters, instruction_templates, presets, prompts_store
from modules.named_files import PRIVATE, SHARED, Library, dump_yaml, owner_folder
from modules.params import GenerationParams
from modules.roles import Identity, NotAdmin
from modules.safe_files import UnsafeNameError

ADMIN = Identity(owner="alice", user="alice", address="10.0.0.1", is_admin=True)
BOB = Identity(owner="bob", user="bob", address="10.0.0.2", is_admin=False)
CAROL = Identity(owner="carol", user="carol", address="10.0.0.3", is_admin=False)
VISITOR = Identity(owner="browser:" + "k" * 24, user=None, address="10.0.0.4", is_admin=False)

PNG_1x1 = bytes.fromhex(  # a real 1x1 PNG: character pictures are checked to be images
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360606060000000050001a5f645400000000049454e44ae426082")


@pytest.fixture
def project(tmp_path):
    """A project folder holding text-generation-webui's files, as users copy them in."""
    root = tmp_path / "project"
    for folder in ("presets", "characters", "instruction-templates", "prompts"):
        (root / folder).mkdir(parents=True)
    (root / "presets" / "Balanced.yaml").write_text("temperature: 0.7\ntop_p: 0.9\ntop_k: 20\n")
    (root / "presets" / "TGW.yaml").write_text("temperature: 0.82\ntop_k: 72\ntfs: 0.95\ndo_sample: true\n")
    (root / "characters" / "Chiharu.yaml").write_text(
        "name: Chiharu Yamada\ngreeting: |-\n  *Chiharu looks up*\n  Hey!\n"
        "context: |-\n  Chiharu is a tech geek.\n\n  {{user}}: Hi\nuser_name: Me\n")
    (root / "characters" / "Chiharu.png").write_bytes(PNG_1x1)
    (root / "instruction-templates" / "ChatML.yaml").write_text(
        "instruction_template: |-\n  {%- for message in messages -%}\n"
        "  {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}\n"
        "  {%- endfor -%}\n")
    (root / "instruction-templates" / "Plain.jinja").write_text("{{ messages[0]['content'] }}")
    (root / "prompts" / "QA.txt").write_text("Question: ?\nAnswer:")
    return root


@pytest.fixture
def library(project, tmp_path):
    return Library(project, tmp_path / "data")


def listing(store, identity):
    return [(entry.name, entry.scope, entry.writable) for entry in store.entries(identity)]


def test_text_generation_webui_files_load_through_the_library(library):
    params, warnings = presets.load_preset("TGW", library.presets, BOB)
    assert (params.temperature, params.top_k, params.do_sample) == (0.82, 72, True)
    assert "tfs" in warnings[0]
    chiharu = characters.load_character("Chiharu", library.characters, BOB)
    assert (chiharu.name, chiharu.greeting) == ("Chiharu Yamada", "*Chiharu looks up*\nHey!")
    assert chiharu.extras == {"user_name": "Me"} and chiharu.picture.read_bytes() == PNG_1x1
    assert instruction_templates.load_template("ChatML", library.templates, BOB).startswith("{%- for")
    assert instruction_templates.load_template("Plain", library.templates, BOB) == "{{ messages[0]['content'] }}"
    assert prompts_store.load_prompt("QA", library.prompts, BOB) == "Question: ?\nAnswer:"


def test_private_files_are_listed_for_their_owner_only_and_marked(library, tmp_path):
    path = presets.save_preset("Mine", GenerationParams(top_k=7), library.presets, BOB, PRIVATE)
    assert path.is_relative_to(tmp_path / "data" / "users")
    assert listing(library.presets, BOB) == [
        ("Balanced", SHARED, False), ("Mine", PRIVATE, True), ("TGW", SHARED, False)]
    assert [e.label for e in library.presets.entries(BOB)] == ["Balanced", "Mine (private)", "TGW"]
    assert presets.list_presets(library.presets, CAROL) == ["Balanced", "TGW"]
    assert presets.list_presets(library.presets) == ["Balanced", "TGW"]      # nobody: shared only
    with pytest.raises(presets.PresetError, match="no preset named 'Mine'"):
        presets.load_preset("Mine", library.presets, CAROL)
    assert presets.load_preset("Mine", library.presets, BOB)[0].top_k == 7


def test_saving_is_private_by_default(library, project):
    prompts_store.save_prompt("Draft", "Once upon a time", library.prompts, VISITOR)
    assert prompts_store.list_prompts(project / "prompts") == ["QA"]
    assert library.prompts.get("Draft", VISITOR).scope == PRIVATE


def test_a_private_file_wins_over_the_shared_one_of_the_same_name(library):
    presets.save_preset("Balanced", GenerationParams(top_k=5), library.presets, BOB)
    assert presets.load_preset("Balanced", library.presets, BOB)[0].top_k == 5
    assert presets.load_preset("Balanced", library.presets, CAROL)[0].top_k == 20
    assert listing(library.presets, BOB)[0] == ("Balanced", PRIVATE, True)
    assert presets.delete_preset("Balanced", library.presets, BOB) == PRIVATE
    assert presets.load_preset("Balanced", library.presets, BOB)[0].top_k == 20   # the shared one again


def test_non_admins_cannot_write_or_delete_shared_files(library, project):
    before = {path: path.read_bytes() for path in project.rglob("*") if path.is_file()}
    attempts = [
        lambda: presets.save_preset("Balanced", GenerationParams(top_k=1), library.presets, BOB, SHARED),
        lambda: presets.save_preset("New", GenerationParams(), library.presets, VISITOR, SHARED),
        lambda: presets.delete_preset("Balanced", library.presets, BOB),
        lambda: characters.save_character("Chiharu", "mine now", folder=library.characters,
                                          identity=BOB, scope=SHARED),
        lambda: characters.delete_character("Chiharu", library.characters, BOB),
        lambda: instruction_templates.save_template("ChatML", "{{ 1 }}", library.templates, BOB, SHARED),
        lambda: instruction_templates.delete_template("Plain", library.templates, BOB),
        lambda: prompts_store.save_prompt("QA", "changed", library.prompts, BOB, SHARED),
        lambda: prompts_store.delete_prompt("QA", library.prompts, VISITOR),
    ]
    for attempt in attempts:
        with pytest.raises(NotAdmin, match="Only an admin can change or delete the shared"):
            attempt()
    after = {path: path.read_bytes() for path in project.rglob("*") if path.is_file()}
    assert after == before


def test_admins_write_and_delete_shared_files_for_everyone(library, project):
    presets.save_preset("House", GenerationParams(top_k=9), library.presets, ADMIN, SHARED)
    assert yaml.safe_load((project / "presets" / "House.yaml").read_text()) == {"top_k": 9}
    assert ("House", SHARED, False) in listing(library.presets, BOB)
    assert presets.load_preset("House", library.presets, VISITOR)[0].top_k == 9
    assert presets.delete_preset("House", library.presets, ADMIN) == SHARED
    assert not (project / "presets" / "House.yaml").exists()


def test_writes_through_a_store_need_an_identity(library):
    with pytest.raises(PermissionError):
        presets.save_preset("Anon", GenerationParams(), library.presets)
    with pytest.raises(PermissionError):
        prompts_store.delete_prompt("QA", library.prompts)


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "", "x\\y"])
@pytest.mark.parametrize("scope", [SHARED, PRIVATE])
def test_names_that_could_leave_the_folder_are_refused(library, tmp_path, name, scope):
    outside = tmp_path / "escape.txt"
    outside.write_text("keep")
    with pytest.raises(UnsafeNameError):
        prompts_store.save_prompt(name, "text", library.prompts, ADMIN, scope)
    with pytest.raises(UnsafeNameError):
        prompts_store.load_prompt(name, library.prompts, ADMIN)
    with pytest.raises(UnsafeNameError):
        prompts_store.delete_prompt(name, library.prompts, ADMIN, scope)
    assert outside.read_text() == "keep"
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("owner", ["../../etc", "a/b", "..", "browser:" + "z" * 30, "名前", ""])
def test_any_owner_gets_one_folder_inside_the_data_folder(library, tmp_path, owner):
    who = Identity(owner=owner, user=None, address=None, is_admin=False)
    path = prompts_store.save_prompt("Note", "hi", library.prompts, who)
    users = (tmp_path / "data" / "users").resolve()
    assert path.parent.parent.parent == users
    assert path.parent == users / owner_folder(owner) / "prompts"


def test_owner_folders_hide_browser_keys_and_keep_lookalike_names_apart():
    key = "s3cr3t-browser-key-123456"
    assert key not in owner_folder("browser:" + key)
    assert owner_folder("a b") != owner_folder("a_b")
    assert owner_folder("alice").startswith("user-alice-")


def test_private_character_copy_takes_the_picture_and_extras_and_deletes_with_them(library, project):
    shared = characters.load_character("Chiharu", library.characters, BOB)
    path = characters.save_character("Chiharu", "Bob's version", shared.greeting, shared.picture,
                                     library.characters, BOB)
    assert sorted(os.listdir(path.parent)) == ["Chiharu.png", "Chiharu.yaml"]
    mine = characters.load_character("Chiharu", library.characters, BOB)
    assert (mine.context, mine.extras) == ("Bob's version", {"user_name": "Me"})
    assert mine.picture.parent == path.parent and mine.picture.read_bytes() == PNG_1x1
    characters.delete_character("Chiharu", library.characters, BOB)
    assert os.listdir(path.parent) == []
    assert (project / "characters" / "Chiharu.png").exists()
    assert characters.load_character("Chiharu", library.characters, BOB).context.startswith("Chiharu is")


def test_private_template_keeps_format_and_shadows_the_shared_one(library):
    path = instruction_templates.save_template("Plain", "{{ messages[-1]['content'] }}",
                                               library.templates, VISITOR)
    assert path.suffix == ".yaml" and library.templates.get("Plain", VISITOR).scope == PRIVATE
    assert instruction_templates.load_template("Plain", library.templates, VISITOR) == "{{ messages[-1]['content'] }}"
    assert instruction_templates.load_template("Plain", library.templates, BOB) == "{{ messages[0]['content'] }}"


def test_the_one_yaml_writer_keeps_text_readable_and_exact():
    values = {"context": "Line one\nLine two: colon", "stop": "\n", "plain": "yes", "name": "ünï"}
    text = dump_yaml(values)
    assert "context: |-\n  Line one\n  Line two: colon\n" in text
    assert 'stop: "\\n"' in text and "ünï" in text
    assert yaml.safe_load(text) == values
    assert dump_yaml({}) == "{}\n"
