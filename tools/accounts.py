"""Manage the accounts file that server.py reads with --gradio-auth-path.

Passwords are stored as argon2id hashes and never appear on a command line (where other
local users could read them with ps): the tool asks for them twice, or reads one line from
standard input when stdin is not a terminal or --password-stdin is given.
"""
from __future__ import annotations

import argparse
import getpass
import os
import re
import stat
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argon2  # noqa: E402

from modules.accounts import ADMIN_MARK, AccountEntry, AccountsError, parse_entry  # noqa: E402
from modules.safe_files import atomic_write_text  # noqa: E402

HEADER = ("# Log-in accounts for server.py --gradio-auth-path: user:argon2-hash, then ':admin' for an admin.\n"
          "# Edit with python tools/accounts.py; keep it private (chmod 600).")
# No spaces, ':' or ',' (the separators of --gradio-auth and of this file), not a comment.
_USER_NAME = re.compile(r"[^\s:,#][^\s:,]{0,63}")

EPILOG = """examples:
  python tools/accounts.py add users.txt alice --admin      (asks for the password twice)
  printf '%s\\n' "$PW" | python tools/accounts.py password users.txt alice --password-stdin
  python tools/accounts.py remove users.txt bob
  python tools/accounts.py mark-admin users.txt carol
  python tools/accounts.py convert users.txt                 (hashes old user:password lines)
  python tools/accounts.py list users.txt

A line of the file is user:HASH or user:HASH:admin (an argon2id hash never contains ':'); an
old user:password line still works, with a warning, until convert hashes it.
The file is written atomically with mode 600 (only its owner may read it: run this as the
user the server runs as); comments and other lines are kept. Restart the server to apply.
"""


class ToolError(Exception):
    """Something to tell the user; the message never contains a password."""


class AccountsFile:
    """The file's lines, kept as they are except the ones a command changes."""

    def __init__(self, path: Path):
        self.path = path
        self.existed = path.exists()
        self.lines = path.read_text(encoding="utf-8").splitlines() if self.existed else HEADER.splitlines()

    def entries(self) -> dict[str, tuple[int, AccountEntry]]:
        """Every account with its line index; a malformed line stops the command (the server
        would refuse the file too)."""
        found = {}
        for index, line in enumerate(self.lines):
            text = line.strip()
            if text and not text.startswith("#"):
                entry = parse_entry(f"{self.path}, line {index + 1}", text)
                if entry.user in found:
                    raise ToolError(f"{self.path}: user {entry.user!r} is listed twice")
                found[entry.user] = (index, entry)
        return found

    def index_of(self, user: str) -> tuple[int, AccountEntry]:
        try:
            return self.entries()[user]
        except KeyError:
            raise ToolError(f"{self.path} has no user {user!r}") from None

    def save(self) -> None:
        loose = self.existed and stat.S_IMODE(self.path.stat().st_mode) & 0o077
        atomic_write_text(self.path, "\n".join(self.lines) + "\n")     # the temp file is made 0600
        os.chmod(self.path, 0o600)
        if loose:
            print(f"{self.path} was readable by others; it is now private (mode 600).")


def hashed_line(user: str, password: str, admin: bool) -> str:
    return f"{user}:{argon2.PasswordHasher().hash(password)}" + (f":{ADMIN_MARK}" if admin else "")


def read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("The same again: ") != password:
            raise ToolError("the two passwords differ; nothing changed")
    if not password:
        raise ToolError("the password is empty; nothing changed")
    return password


def check_user_name(user: str) -> str:
    if not _USER_NAME.fullmatch(user) or not user.isprintable():
        raise ToolError(f"{user!r} is not a usable user name: 1 to 64 characters, no spaces, ':' "
                        "or ',', not starting with '#'")
    return user


# ---- the commands --------------------------------------------------------------------------------
def add(accounts: AccountsFile, args) -> str:
    if check_user_name(args.user) in accounts.entries():
        raise ToolError(f"{args.user!r} already exists; use the password command to change it")
    accounts.lines.append(hashed_line(args.user, read_password(args.password_stdin), args.admin))
    return f"Added {args.user}{' (admin)' if args.admin else ''}."


def change_password(accounts: AccountsFile, args) -> str:
    index, entry = accounts.index_of(args.user)
    accounts.lines[index] = hashed_line(args.user, read_password(args.password_stdin), entry.admin)
    return f"Changed the password of {args.user}."


def remove(accounts: AccountsFile, args) -> str:
    index, _ = accounts.index_of(args.user)
    del accounts.lines[index]
    return f"Removed {args.user}."


def set_admin(accounts: AccountsFile, args, admin: bool) -> str:
    index, entry = accounts.index_of(args.user)
    accounts.lines[index] = _as_hashed_line(entry, admin)
    return f"{args.user} is {'now' if admin else 'no longer'} an admin."


def convert(accounts: AccountsFile, args) -> str:
    plaintext = [(index, entry) for index, entry in accounts.entries().values() if not entry.hashed]
    for index, entry in plaintext:
        accounts.lines[index] = _as_hashed_line(entry, entry.admin)
    if not plaintext:
        return "No plaintext passwords; nothing changed."
    return f"Hashed the passwords of {', '.join(entry.user for _, entry in plaintext)}."


def list_users(accounts: AccountsFile, args) -> str:
    rows = [f"{user}{'  admin' if entry.admin else ''}{'  (plaintext: run convert)' if not entry.hashed else ''}"
            for user, (_, entry) in sorted(accounts.entries().items())]
    return "\n".join(rows) or "No accounts."


def _as_hashed_line(entry: AccountEntry, admin: bool) -> str:
    secret = entry.secret if entry.hashed else argon2.PasswordHasher().hash(entry.secret)
    return f"{entry.user}:{secret}" + (f":{ADMIN_MARK}" if admin else "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python tools/accounts.py", description=__doc__,
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, run, help, user=True, password=False, writes=True):
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("file", type=Path, metavar="FILE", help="the accounts file")
        if user:
            sub.add_argument("user", metavar="USER", help="the user name, as typed on the log-in page")
        if password:
            sub.add_argument("--password-stdin", action="store_true",
                             help="read the password from one line of standard input instead of asking")
        sub.set_defaults(run=run, writes=writes)
        return sub

    command("add", add, "add a user (creates FILE if needed)", password=True).add_argument(
        "--admin", action="store_true", help="mark the user admin (may change what everyone uses)")
    command("password", change_password, "change a user's password", password=True)
    command("remove", remove, "remove a user")
    command("mark-admin", lambda accounts, args: set_admin(accounts, args, True), "mark a user admin")
    command("unmark-admin", lambda accounts, args: set_admin(accounts, args, False), "remove a user's admin mark")
    command("convert", convert, "hash every plaintext user:password line in place", user=False)
    command("list", list_users, "list the users and their marks (no passwords)", user=False, writes=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command != "add" and not args.file.exists():
            raise ToolError(f"{args.file} does not exist")
        accounts = AccountsFile(args.file)
        message = args.run(accounts, args)
        if args.writes and accounts.lines != _original_lines(args.file):
            accounts.save()
            message += " Restart the server to apply."
    except (ToolError, AccountsError, OSError, UnicodeDecodeError) as exc:
        print(f"accounts.py: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0


def _original_lines(path: Path) -> list[str] | None:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
