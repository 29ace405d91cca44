"""Saved prompts for the Default tab: the prompts/ folder."""
from __future__ import annotations

import pytest

from modules import prompts_store
from modules.prompts_store import PromptError, delete_prompt, list_prompts, load_prompt, save_prompt
from modules.safe_files import UnsafeNameError


def test_save_load_delete_round_trip(tmp_path):
    text = "Question: Why is the sky blue?\nAnswer:  ← two spaces, kept as is\n"
    path = save_prompt("Sky question", text, tmp_path)
    assert path == tmp_path / "Sky question.txt"
    assert list_prompts(tmp_path) == ["Sky question"]
    assert load_prompt("Sky question", tmp_path) == text
    save_prompt("Sky question", "changed", tmp_path)          # saving again overwrites
    assert load_prompt("Sky question", tmp_path) == "changed"
    delete_prompt("Sky question", tmp_path)
    assert list_prompts(tmp_path) == []
    with pytest.raises(PromptError, match="no prompt named"):
        load_prompt("Sky question", tmp_path)


@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", "sub\\dir", "", "   ", ".hidden"])
def test_bad_names_are_refused_with_a_message(tmp_path, bad):
    with pytest.raises(UnsafeNameError) as error:
        save_prompt(bad, "text", tmp_path)
    assert str(error.value)          # a message the Default tab can show
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UnsafeNameError):
        load_prompt(bad, tmp_path)
    with pytest.raises(UnsafeNameError):
        delete_prompt(bad, tmp_path)


def test_slash_and_dot_dot_messages_name_the_problem(tmp_path):
    with pytest.raises(UnsafeNameError, match="/"):
        save_prompt("a/b", "text", tmp_path)
    with pytest.raises(UnsafeNameError, match=r"\.\."):
        save_prompt("a..b", "text", tmp_path)


def test_deleting_a_missing_prompt_says_so(tmp_path):
    with pytest.raises(PromptError, match="no prompt named 'nothing'"):
        delete_prompt("nothing", tmp_path)


def test_shipped_examples_load():
    names = list_prompts(prompts_store.PROMPTS_FOLDER)
    assert {"QA", "Story"} <= set(names)
    assert load_prompt("QA").rstrip().endswith("Answer:")
