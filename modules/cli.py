"""Command-line flags, with text-generation-webui's names and meanings."""
from __future__ import annotations

import argparse

from loaders.settings import LoadSettings
from loaders.specs import LOAD_FIELDS, LOADER_NAMES, SECTIONS
from modules.limits import add_limit_flags

DEFAULT_PORT = 7860


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="server.py", description="A local LLM workbench: chat with, test and tune local models "
        "from the browser.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    basic = parser.add_argument_group("Basic settings")
    basic.add_argument("--model", help="Model to load at start: a .gguf file or a model folder, by name "
                       "inside --model-dir or by path. Default: the first model found, preferring the "
                       "default SmolLM2 GGUF.")
    basic.add_argument("--model-dir", default="models", help="Folder holding the models.")
    basic.add_argument("--loader", choices=LOADER_NAMES,
                       help="Force a loader instead of detecting it from the files.")
    basic.add_argument("--settings", help="A YAML file of default UI settings (sampler values and "
                       "preset, e.g. 'preset: Balanced' or 'temperature: 0.7').")
    basic.add_argument("--extensions", nargs="+", default=[], help="Extensions to enable at start, by folder "
                       "name in extensions/; their hooks run in this order (docs/extensions.md).")
    basic.add_argument("--extension-timeout", type=float, default=10.0, help="Seconds an extension's hook "
                       "may take for one request; past that the request goes on without it.")
    basic.add_argument("--verbose", action="store_true", help="Print prompts and backend logs to the console.")
    basic.add_argument("--data-dir", default="data", help="Where chats and per-model settings are stored.")

    add_load_flags(parser)

    net = parser.add_argument_group("Network and access")
    net.add_argument("--listen", action="store_true", help="Accept connections from the local network, not only this machine.")
    net.add_argument("--listen-host", help="Address to listen on (with --listen). Default 0.0.0.0.")
    net.add_argument("--listen-port", type=int, default=DEFAULT_PORT, help="Port to listen on.")
    net.add_argument("--gradio-auth", help="Accounts as 'user:pass,user2:pass2'. Other local users can read "
                     "this in the process list: prefer --gradio-auth-path.")
    net.add_argument("--gradio-auth-path", help="A file of accounts, one 'user:password' or 'user:HASH[:admin]' "
                     "a line (tools/accounts.py writes hashed entries). Must not be readable by group or others.")
    net.add_argument("--admin-users", default="", help="Comma-separated account names that may change what "
                     "everyone uses: the model, downloads, shared presets, characters, templates and prompts.")
    net.add_argument("--everyone-admin", action="store_true", help="Without accounts, make every visitor an "
                     "admin (by default only browsers on this machine are).")
    net.add_argument("--forwarded-allow-ips", default="", help="Addresses of reverse proxies whose "
                     "X-Forwarded-For header is believed, comma separated. Default: none, so a client "
                     "cannot pretend to be another address.")
    api = parser.add_argument_group("API (docs/api.md)")
    api.add_argument("--api", action="store_true", help="Also serve OpenAI- and Anthropic-compatible endpoints "
                     "under /v1 on the page's own port (and on --api-port when given).")
    api.add_argument("--api-port", type=int, default=0, help="Also serve the API alone on this port (0: only "
                     "on the page's port).")
    api.add_argument("--api-key", help="Key(s) the API requires, comma separated, as 'Authorization: Bearer KEY' "
                     "or 'x-api-key: KEY'. Each key counts as one person for the limits.")
    api.add_argument("--admin-key", help="Key that may load and unload models through the API (it also works as "
                     "an API key). Without it the page's rule applies: this machine only, without accounts.")
    api.add_argument("--api-cors-origins", default="", help="Web origins allowed to call the API from a browser "
                     "on --api-port, comma separated. Default: none (CORS off).")
    add_limit_flags(parser)
    return parser


# Flags parsed for compatibility whose feature is not built yet: using one says so.
NOT_YET_IMPLEMENTED = {
}


def not_implemented_messages(args: argparse.Namespace) -> list[str]:
    return [message for name, message in NOT_YET_IMPLEMENTED.items() if getattr(args, name, None)]


def add_load_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per LOAD_FIELDS entry, grouped as the Model tab groups them, its range
    checked as it is parsed."""
    groups = {section: parser.add_argument_group(section.removesuffix(" settings"))
              for section in SECTIONS}
    for field in LOAD_FIELDS:
        group, names = groups[field.section], (field.flag, *field.aliases)
        if field.kind is bool:
            action = "store_false" if field.default else "store_true"
            group.add_argument(*names, dest=field.name, action=action, help=field.help)
        elif field.choices:
            group.add_argument(*names, dest=field.name, default=field.default, choices=field.choices,
                               help=field.help)
        else:
            group.add_argument(*names, dest=field.name, default=field.default, help=field.help,
                               type=_checked(field), metavar=field.name.upper())


def _checked(field):
    """argparse type for a field: its kind, within its range ("--ctx-size: must be ...")."""
    def convert(text: str):
        try:
            value = field.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        try:
            field.check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value
    return convert


def load_settings_from_args(args: argparse.Namespace) -> LoadSettings:
    return LoadSettings(loader=args.loader, **{field.name: getattr(args, field.name) for field in LOAD_FIELDS})
