"""The limits that keep one person from taking the shared box for themselves.

One table, the fields of Limits (read as LIMIT_SPECS), drives the command-line flags, the
defaults, the checks and docs/sharing.md (a test compares them). Each limit answers with a
message written for the person at the keyboard.
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


def _limit(default: float, help_text: str):
    """A Limits field with the help its flag shows, so each limit is written once, here."""
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class Limits:
    max_requests_per_user: int = _limit(3, "Requests one person may have queued or running at once, "
                                        "in all tabs together.")
    max_requests_per_address: int = _limit(16, "Without accounts: requests all browsers at one client "
                                           "address may have queued or running at once (several people "
                                           "may share an address).")
    max_input_chars: int = _limit(100_000, "Characters in one message, Notebook or Default text.")
    max_new_tokens_limit: int = _limit(4096, "Ceiling on max_new_tokens for one request.")
    max_stop_strings: int = _limit(32, "Custom stop strings in one request.")
    max_stop_string_chars: int = _limit(200, "Characters in one stop string.")
    max_grammar_chars: int = _limit(50_000, "Characters in a grammar_string.")
    max_logit_bias: int = _limit(1_000, "Entries in logit_bias (and banned tokens).")
    max_dry_breakers: int = _limit(32, "DRY sequence breakers in one request.")
    max_template_chars: int = _limit(50_000, "Characters in a chat template.")
    template_timeout: float = _limit(2.0, "Seconds a chat template may take to render; a slower one is stopped.")
    max_chats_per_user: int = _limit(1_000, "Chats one person may keep stored.")
    max_stored_chars_per_user: int = _limit(50_000_000, "Characters of chat text one person may keep stored.")
    max_upload_mb: int = _limit(10, "Size of one uploaded file (a character picture...), in MiB.")
    max_attachments_per_message: int = _limit(8, "Files attached to one chat message.")
    max_attachment_kb: int = _limit(4096, "Size of one file attached to a chat message, in KiB.")
    max_message_attachments_kb: int = _limit(10240, "Size of the files attached to one chat message "
                                             "together, in KiB.")
    max_attachment_chars: int = _limit(200_000, "Characters of text read from the files of one chat "
                                       "message (a PDF's text can be much larger than its file).")
    download_margin_gb: float = _limit(5, "Free disk a download must leave behind, in GiB.")

    def replace(self, **changes) -> "Limits":
        return dataclasses.replace(self, **changes)


LIMIT_SPECS: tuple[LimitSpec, ...] = tuple(
    LimitSpec(f.name, f.default, f.metadata["help"]) for f in dataclasses.fields(Limits))


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
