"""Instruction templates: <name>.yaml in text-generation-webui's form

    instruction_template: |-
      {%- for message in messages -%} ...

or <name>.jinja holding the Jinja2 source alone. Shared ones live in instruction-templates/,
private ones in each owner's folder (modules.named_files); `folder` below is such a store,
used with the asker's Identity, or a plain folder as before. Storage and a preview only;
the chat renders real prompts through modules.template_render.
"""
from __future__ import annotations

from pathlib import Path

from modules.named_files import NamedFiles, as_store, dump_yaml
from modules.roles import Identity
from modules.safe_files import find_named_file, safe_name
from modules.template_render import TemplateError, compile_template, render_chat_template

TEMPLATES_FOLDER = Path(__file__).resolve().parents[1] / "instruction-templates"
YAML_SUFFIXES = (".yaml", ".yml")
SUFFIXES = YAML_SUFFIXES + (".jinja",)
YAML_KEY = "instruction_template"

SAMPLE_CONVERSATION = (
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "And of Italy?"},
)

__all__ = [
    "InstructionTemplateError", "TemplateError", "SAMPLE_CONVERSATION", "list_templates",
    "load_template", "save_template", "delete_template", "render_preview",
]


class InstructionTemplateError(ValueError):
    """A template file that cannot be read, saved or deleted; the message names the file."""


def store(shared_folder=TEMPLATES_FOLDER, data_dir=None) -> NamedFiles:
    return NamedFiles("instruction-templates", shared_folder, data_dir, suffixes=SUFFIXES,
                      noun="instruction template", error=InstructionTemplateError)


def list_templates(folder=TEMPLATES_FOLDER, identity: Identity | None = None) -> list[str]:
    files, identity = as_store(folder, identity, store)
    return files.names(identity)


def load_template(name: str, folder=TEMPLATES_FOLDER, identity: Identity | None = None) -> str:
    """The Jinja2 source of the template this person sees under `name`."""
    files, identity = as_store(folder, identity, store)
    entry = files.get(name, identity)
    if entry.path.suffix == ".jinja":
        return files.read_text(entry)
    source = files.read_yaml(entry).get(YAML_KEY)
    if not isinstance(source, str):
        # Older text-generation-webui files (user/bot/turn_template keys) predate Jinja2.
        raise InstructionTemplateError(
            f"{entry.path.name}: expected an '{YAML_KEY}' key holding Jinja2 source.")
    return source


def save_template(name: str, source: str, folder=TEMPLATES_FOLDER, identity: Identity | None = None,
                  scope: str | None = None) -> Path:
    """Saves the source to `scope` (default: private where there are private folders; shared
    needs an admin), in the format of the file already there under this name, else as YAML.
    A template that does not compile is refused (TemplateError names the line)."""
    files, identity = as_store(folder, identity, store)
    scope = scope or files.default_scope
    compile_template(source)
    name = safe_name(name)
    existing = find_named_file(files.writable_folder(identity, scope), name, SUFFIXES)
    if existing is not None and existing.suffix == ".jinja":
        return files.write_text(name, source, identity, scope, suffix=".jinja")
    suffix = existing.suffix if existing is not None else None
    return files.write_text(name, dump_yaml({YAML_KEY: source}), identity, scope, suffix=suffix)


def delete_template(name: str, folder=TEMPLATES_FOLDER, identity: Identity | None = None,
                    scope: str | None = None) -> str:
    """Removes every file of that name, so no other format of it shows up afterwards;
    returns the scope it was deleted from."""
    files, identity = as_store(folder, identity, store)
    return files.delete(name, identity, scope).scope


def render_preview(template_source: str, bos_token: str = "<s>", eos_token: str = "</s>") -> str:
    """The sample conversation (system, user, assistant, user) as the template renders it,
    with the generation prompt. Raises TemplateError with the line on failure."""
    return render_chat_template(template_source, [dict(m) for m in SAMPLE_CONVERSATION],
                                add_generation_prompt=True, bos_token=bos_token,
                                eos_token=eos_token)
