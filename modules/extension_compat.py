"""The text-generation-webui modules an extension imports, as small stand-ins.

TGW's documented example starts with `from modules import chat, shared` and
`from modules.text_generation import decode, encode, generate_reply`. So that such a
script loads unmodified, the registry installs `modules.shared`, `modules.chat` and
`modules.text_generation` here (only if no real module of that name exists). They offer
what extensions use from them and work only inside a request's hooks, where the request
runner has said what they act on:

- chat.generate_chat_prompt(user_input, state, **kwargs): the default chat prompt (what
  custom_generate_chat_prompt starts from);
- text_generation.encode / decode / get_encoded_length: the loaded model's tokenizer;
- shared.settings (the settings file), shared.args.extensions, shared.gradio ({}),
  shared.model_name. There is no shared.model: generation goes through the front door.
"""
from __future__ import annotations

import contextvars
import sys
import types
from typing import Callable

# Set by the chat pipeline around the hooks of one request.
PROMPT_BUILDER: contextvars.ContextVar[Callable | None] = contextvars.ContextVar("tgw_prompt_builder",
                                                                                 default=None)
TOKENIZER: contextvars.ContextVar = contextvars.ContextVar("tgw_tokenizer", default=None)


class NotAvailableHere(RuntimeError):
    pass


def generate_chat_prompt(user_input: str, state: dict, **kwargs) -> str:
    builder = PROMPT_BUILDER.get()
    if builder is None:
        raise NotAvailableHere("chat.generate_chat_prompt works only while a chat reply is being prepared "
                               "(inside custom_generate_chat_prompt).")
    return builder(user_input, state, **kwargs)


def _tokenizer():
    tokenizer = TOKENIZER.get()
    if tokenizer is None:
        raise NotAvailableHere("encode/decode work only inside a request's hooks, with a model loaded.")
    return tokenizer


def encode(prompt: str, add_special_tokens: bool = True, add_bos_token: bool = True, truncation_length=None):
    """The prompt's token ids as TGW returns them: a LongTensor of shape [1, n]."""
    ids = _tokenizer().encode(str(prompt), add_bos_token)
    if truncation_length:
        ids = ids[-int(truncation_length):]
    return as_input_ids(ids)


def decode(output_ids, skip_special_tokens: bool = True) -> str:
    return _tokenizer().decode(token_list(output_ids), skip_special_tokens)


def get_encoded_length(prompt: str) -> int:
    return len(_tokenizer().encode(str(prompt), True))


def generate_reply(*args, **kwargs):
    raise NotAvailableHere("Extensions cannot start generations of their own here; every generation "
                           "goes through the server's front door, under the person's limits.")


def as_input_ids(ids: list[int]):
    try:
        import torch
    except ImportError:
        return [list(ids)]
    return torch.tensor([list(ids)], dtype=torch.long)


def token_list(value) -> list[int]:
    """Token ids from what an extension hands back: a tensor [1, n] or [n], an array, a list."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        value = value[0]
    return [int(token) for token in value]


def install_tgw_modules(registry) -> None:
    """Makes `from modules import chat, shared, text_generation` work for scripts."""
    import modules
    shared = types.ModuleType("modules.shared", "text-generation-webui's shared module, as extensions see it.")
    shared.settings = registry.settings
    shared.args = types.SimpleNamespace(extensions=registry.enabled_names(), verbose=False, listen=False,
                                        multi_user=True)
    shared.gradio = {}
    shared.model = None
    shared.tokenizer = None
    shared.model_name = "None"
    shared.processing_message = "*Is typing...*"
    shared.stop_everything = False
    chat = types.ModuleType("modules.chat", "text-generation-webui's chat module, as extensions see it.")
    chat.generate_chat_prompt = generate_chat_prompt
    text_generation = types.ModuleType("modules.text_generation", "text-generation-webui's text_generation "
                                       "module, as extensions see it.")
    for fn in (encode, decode, get_encoded_length, generate_reply):
        setattr(text_generation, fn.__name__, fn)
    for name, module in (("shared", shared), ("chat", chat), ("text_generation", text_generation)):
        full = f"modules.{name}"
        existing = sys.modules.get(full)
        if existing is not None and not getattr(existing, "_tgw_stand_in", False):
            continue
        if existing is None and _real_module_exists(name):
            continue
        module._tgw_stand_in = True
        sys.modules[full] = module
        setattr(modules, name, module)


def _real_module_exists(name: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(f"modules.{name}") is not None
