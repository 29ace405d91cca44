"""Instruction templates: instruction-templates/<name>.yaml in text-generation-webui's form

    instruction_template: |-
      {%- for message in messages -%} ...

or <name>.jinja holding the Jinja2 source alone. Storage and a preview only; the chat
renders real prompts through modules.template_render.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from modules.safe_files import (
    atomic_write_text, find_named_file, list_names, path_in_folder, read_yaml_mapping, safe_name,
)
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


def list_templates(folder=TEMPLATES_FOLDER) -> list[str]:
    return list_names(folder, SUFFIXES)


def load_template(name: str, folder=TEMPLATES_FOLDER) -> str:
    """The Jinja2 source of the named template."""
    path = find_named_file(folder, name, SUFFIXES)
    if path is None:
        raise InstructionTemplateError(f"There is no instruction template named {name!r}.")
    if path.suffix == ".jinja":
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InstructionTemplateError(f"{path.name}: not a UTF-8 text file.") from None
    data = read_yaml_mapping(path, InstructionTemplateError)
    source = data.get(YAML_KEY)
    if not isinstance(source, str):
        # Older text-generation-webui files (user/bot/turn_template keys) predate Jinja2.
        raise InstructionTemplateError(
            f"{path.name}: expected an '{YAML_KEY}' key holding Jinja2 source.")
    return source


def save_template(name: str, source: str, folder=TEMPLATES_FOLDER) -> Path:
    """Saves the source, in the file's existing format if there is one, else as YAML.
    A template that does not compile is refused (TemplateError names the line)."""
    compile_template(source)
    name = safe_name(name)
    existing = find_named_file(folder, name, SUFFIXES)
    if existing is not None and existing.suffix == ".jinja":
        atomic_write_text(existing, source)
        return existing
    path = existing or path_in_folder(folder, name, ".yaml")
    atomic_write_text(path, _template_yaml(source))
    return path


def delete_template(name: str, folder=TEMPLATES_FOLDER) -> None:
    """Removes every file of that name, so no other format of it shows up afterwards."""
    paths = [path_in_folder(folder, name, suffix) for suffix in SUFFIXES]
    found = [path for path in paths if path.is_file()]
    if not found:
        raise InstructionTemplateError(f"There is no instruction template named {name!r}.")
    for path in found:
        path.unlink()


def render_preview(template_source: str, bos_token: str = "<s>", eos_token: str = "</s>") -> str:
    """The sample conversation (system, user, assistant, user) as the template renders it,
    with the generation prompt. Raises TemplateError with the line on failure."""
    return render_chat_template(template_source, [dict(m) for m in SAMPLE_CONVERSATION],
                                add_generation_prompt=True, bos_token=bos_token,
                                eos_token=eos_token)


class _TemplateDumper(yaml.SafeDumper):
    """Jinja2 source as a readable |- block, like text-generation-webui's files."""


def _represent_text(dumper, text: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", text,
                                   style="|" if "\n" in text else None)


_TemplateDumper.add_representer(str, _represent_text)


def _template_yaml(source: str) -> str:
    return yaml.dump({YAML_KEY: source}, Dumper=_TemplateDumper, allow_unicode=True,
                     default_flow_style=False, width=1000)
