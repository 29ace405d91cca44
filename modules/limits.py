"""The limits that keep one person from taking the shared box for themselves.

One table, LIMIT_SPECS, drives the command-line flags, the defaults, the checks and
docs/sharing.md (a test compares them). Each limit answers with a message written for the
person at the keyboard.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class LimitSpec:
    name: str            # the Limits field; the flag is --name-with-dashes
    default: float
    help: str


LIMIT_SPECS: tuple[LimitSpec, ...] = (
    LimitSpec("max_requests_per_user", 3, "Requests one person may have queued or running at once, "
              "in all tabs together."),
    LimitSpec("max_requests_per_address", 16, "Without accounts: requests all browsers at one client "
              "address may have queued or running at once (several people may share an address)."),
    LimitSpec("max_input_chars", 100_000, "Characters in one message, Notebook or Default text."),
    LimitSpec("max_new_tokens_limit", 4096, "Ceiling on max_new_tokens for one request."),
    LimitSpec("max_stop_strings", 32, "Custom stop strings in one request."),
    LimitSpec("max_stop_string_chars", 200, "Characters in one stop string."),
    LimitSpec("max_grammar_chars", 50_000, "Characters in a grammar_string."),
    LimitSpec("max_logit_bias", 1_000, "Entries in logit_bias (and banned tokens)."),
    LimitSpec("max_dry_breakers", 32, "DRY sequence breakers in one request."),
    LimitSpec("max_template_chars", 50_000, "Characters in a chat template."),
    LimitSpec("template_timeout", 2.0, "Seconds a chat template may take to render; a slower one is stopped."),
    LimitSpec("max_chats_per_user", 1_000, "Chats one person may keep stored."),
    LimitSpec("max_stored_chars_per_user", 50_000_000, "Characters of chat text one person may keep stored."),
    LimitSpec("max_upload_mb", 10, "Size of one uploaded file (a character picture...), in MiB."),
    LimitSpec("max_attachments_per_message", 8, "Files attached to one chat message."),
    LimitSpec("max_attachment_kb", 4096, "Size of one file attached to a chat message, in KiB."),
    LimitSpec("max_message_attachments_kb", 10240, "Size of the files attached to one chat message "
              "together, in KiB."),
    LimitSpec("max_attachment_chars", 200_000, "Characters of text read from the files of one chat "
              "message (a PDF's text can be much larger than its file)."),
    LimitSpec("download_margin_gb", 5, "Free disk a download must leave behind, in GiB."),
)


@dataclass(frozen=True)
class Limits:
    max_requests_per_user: int = 3
    max_requests_per_address: int = 16
    max_input_chars: int = 100_000
    max_new_tokens_limit: int = 4096
    max_stop_strings: int = 32
    max_stop_string_chars: int = 200
    max_grammar_chars: int = 50_000
    max_logit_bias: int = 1_000
    max_dry_breakers: int = 32
    max_template_chars: int = 50_000
    template_timeout: float = 2.0
    max_chats_per_user: int = 1_000
    max_stored_chars_per_user: int = 50_000_000
    max_upload_mb: int = 10
    max_attachments_per_message: int = 8
    max_attachment_kb: int = 4096
    max_message_attachments_kb: int = 10240
    max_attachment_chars: int = 200_000
    download_margin_gb: float = 5

    def replace(self, **changes) -> "Limits":
        return dataclasses.replace(self, **changes)


assert [s.name for s in LIMIT_SPECS] == [f.name for f in dataclasses.fields(Limits)], \
    "LIMIT_SPECS and Limits must list the same limits in the same order"
assert all(s.default == getattr(Limits(), s.name) for s in LIMIT_SPECS)


def flag_name(spec: LimitSpec) -> str:
    return "--" + spec.name.replace("_", "-")


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Limits for a shared server (see docs/sharing.md)")
    for spec in LIMIT_SPECS:
        kind = float if isinstance(spec.default, float) else int
        group.add_argument(flag_name(spec), dest=spec.name, type=kind, default=spec.default, help=spec.help)


def limits_from_args(args: argparse.Namespace) -> Limits:
    values = {spec.name: getattr(args, spec.name, spec.default) for spec in LIMIT_SPECS}
    for name, value in values.items():
        if value <= 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be positive (got {value}).")
    return Limits(**values)
