"""Saved prompts for the Default tab: prompts/<name>.txt, plain text as text-generation-webui
keeps them, so its prompt files can be copied in as they are.

Names come from a text box in the browser and go through modules.safe_files, so a name
can never reach a file outside the folder.
"""
from __future__ import annotations

from pathlib import Path

from modules.safe_files import atomic_write_text, find_named_file, list_names, path_in_folder

PROMPTS_FOLDER = Path(__file__).resolve().parents[1] / "prompts"
SUFFIXES = (".txt",)


class PromptError(ValueError):
    """A prompt that cannot be loaded, saved or deleted; the message says why."""


def list_prompts(folder=PROMPTS_FOLDER) -> list[str]:
    return list_names(folder, SUFFIXES)


def load_prompt(name: str, folder=PROMPTS_FOLDER) -> str:
    path = find_named_file(folder, name, SUFFIXES)   # raises UnsafeNameError for bad names
    if path is None:
        raise PromptError(f"There is no prompt named {name!r}.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PromptError(f"{path.name} is not a UTF-8 text file.") from None


def save_prompt(name: str, text: str, folder=PROMPTS_FOLDER) -> Path:
    """Writes (or overwrites) the prompt; returns its path. The name is checked first."""
    path = path_in_folder(folder, name, SUFFIXES[0])
    atomic_write_text(path, text or "")
    return path


def delete_prompt(name: str, folder=PROMPTS_FOLDER) -> None:
    path = find_named_file(folder, name, SUFFIXES)
    if path is None:
        raise PromptError(f"There is no prompt named {name!r}.")
    path.unlink()
