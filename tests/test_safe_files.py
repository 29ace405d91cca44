import os

import pytest

from modules.safe_files import (
    UnsafeNameError, atomic_write_text, path_in_folder, safe_name,
)


@pytest.mark.parametrize("name", [
    "", "   ", "../evil", "a/b", "a\\b", "..", ".hidden", "x..y", "tab\there", "nul\x00", "C:evil",
])
def test_unsafe_names_are_refused(name):
    with pytest.raises(UnsafeNameError):
        safe_name(name)


def test_unsafe_name_error_is_a_value_error_with_a_clear_message():
    with pytest.raises(ValueError, match="must not contain"):
        safe_name("a/b")


@pytest.mark.parametrize("name", ["Balanced", "min_p", "Llama-3", "My preset 2", "Vicuna-v1.1", "Café"])
def test_ordinary_names_pass(name):
    assert safe_name(name) == name


def test_name_is_stripped():
    assert safe_name("  Creative ") == "Creative"


def test_path_in_folder_stays_inside(tmp_path):
    assert path_in_folder(tmp_path, "x", ".yaml") == (tmp_path / "x.yaml").resolve()
    with pytest.raises(UnsafeNameError):
        path_in_folder(tmp_path, "../x", ".yaml")


def test_path_in_folder_refuses_a_symlink_leading_out(tmp_path):
    outside = tmp_path / "outside"
    inside = tmp_path / "inside"
    outside.mkdir()
    inside.mkdir()
    (inside / "link.yaml").symlink_to(outside / "target.yaml")
    with pytest.raises(UnsafeNameError):
        path_in_folder(inside, "link", ".yaml")


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.yaml"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new text\n")
    assert target.read_text() == "new text\n"
    assert os.listdir(tmp_path) == ["a.yaml"]


def test_atomic_write_failure_keeps_old_content(tmp_path, monkeypatch):
    target = tmp_path / "a.yaml"
    target.write_text("old")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.yaml"]
