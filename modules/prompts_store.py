"""Saved prompts for the Default tab: <name>.txt, plain text as text-generation-webui keeps
them, so its prompt files can be copied in as they are. Shared ones live in prompts/,
private ones in each owner's folder (modules.named_files); `folder` below is such a store,
used with the asker's Identity, or a plain folder as before.

Names come from a text box in the browser and go through modules.safe_files, so a name
can never reach a file outside the folder.
"""
from __future__ import annotations

from pathlib import Path

from modules.named_files import NamedFiles, as_store
from modules.roles import Identity

PROMPTS_FOLDER = Path(__file__).resolve().parents[1] / "prompts"
SUFFIXES = (".txt",)


class PromptError(ValueError):
    """A prompt that cannot be loaded, saved or deleted; the message says why."""


def store(shared_folder=PROMPTS_FOLDER, data_dir=None) -> NamedFiles:
    return NamedFiles("prompts", shared_folder, data_dir, suffixes=SUFFIXES, noun="prompt",
                      error=PromptError)


def list_prompts(folder=PROMPTS_FOLDER, identity: Identity | None = None) -> list[str]:
    files, identity = as_store(folder, identity, store)
    return files.names(identity)


def load_prompt(name: str, folder=PROMPTS_FOLDER, identity: Identity | None = None) -> str:
    files, identity = as_store(folder, identity, store)
    return files.read_text(files.get(name, identity))   # UnsafeNameError for bad names


def save_prompt(name: str, text: str, folder=PROMPTS_FOLDER, identity: Identity | None = None,
                scope: str | None = None) -> Path:
    """Writes (or overwrites) the prompt in `scope` (default: private where there are private
    folders; shared needs an admin); returns its path. The name is checked first."""
    files, identity = as_store(folder, identity, store)
    return files.write_text(name, text or "", identity, scope or files.default_scope)


def delete_prompt(name: str, folder=PROMPTS_FOLDER, identity: Identity | None = None,
                  scope: str | None = None) -> str:
    """Deletes the prompt this person sees under `name`; returns its scope."""
    files, identity = as_store(folder, identity, store)
    return files.delete(name, identity, scope).scope
