"""Log-in accounts for a shared server: the --gradio-auth / --gradio-auth-path flags, argon2
password hashes, a check that leaks nothing through timing or wording, and a throttle against
password guessing that no one can use to lock a colleague out.

The accounts file, one account a line (tools/accounts.py writes it; `#` comments allowed):
    alice:$argon2id$v=19$m=65536,t=3,p=4$...:admin     a hash, marked admin
    bob:$argon2id$v=19$m=65536,t=3,p=4$...             a hash
    carol:plain text password                          still accepted, with a console warning
A hash never contains ':', so what follows a hash can only be the admin mark; a plaintext
password is everything after the first ':' and may contain ':' and ','.

Usage (from server.py):
    trust_forwarded_headers_from(args.forwarded_allow_ips)                  # before launch()
    accounts = Accounts.from_flags(args.gradio_auth, args.gradio_auth_path)   # None: no log-in
    demo.launch(auth=accounts.gradio_auth if accounts else None,
                app_kwargs={"middleware": [client_address_middleware()]})
"""
from __future__ import annotations

import contextvars
import ipaddress
import logging
import os
import re
import secrets
import shlex
import stat
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger(__name__)

BROWSER_OWNER_PREFIX = "browser:"     # has a ':', which no user name can contain
_BROWSER_KEY = re.compile(r"[A-Za-z0-9_-]{16,128}")
HASH_PREFIX = "$argon2"
ADMIN_MARK = "admin"
COMMAND_LINE_WARNING = ("--gradio-auth puts passwords on the command line: other local users can read "
                        "it with ps; use --gradio-auth-path with a file written by tools/accounts.py.")
VERIFY_SLOTS = 2    # argon2 checks at once: each takes 64 MiB and a core, so a flood can't take the box


class AccountsError(ValueError):
    """A malformed --gradio-auth value or accounts file, or an unsafe one. The message never
    contains a password."""


# ---- parsing -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AccountEntry:
    user: str
    secret: str             # an argon2 hash, or the plaintext password of an old-style line
    admin: bool = False

    @property
    def hashed(self) -> bool:
        return self.secret.startswith(HASH_PREFIX)


def parse_entry(where: str, text: str) -> AccountEntry:
    """One `user:password` or `user:HASH[:admin]`. `where` names the line in error messages."""
    user, colon, rest = text.partition(":")
    user, rest = user.strip(), rest.strip()
    if not colon or not user or not rest:
        raise AccountsError(f"{where}: expected user:password or user:HASH[:admin]")
    if not rest.startswith(HASH_PREFIX):
        return AccountEntry(user, rest)
    hash_text, _, mark = rest.partition(":")
    if mark and mark != ADMIN_MARK:
        raise AccountsError(f"{where}: after the hash only ':{ADMIN_MARK}' may follow")
    try:
        argon2.extract_parameters(hash_text)
    except InvalidHashError:
        raise AccountsError(f"{where}: not a valid argon2 hash (write it with tools/accounts.py)") from None
    return AccountEntry(user, hash_text, admin=bool(mark))


def parse_auth_string(text: str) -> list[AccountEntry]:
    """--gradio-auth "user:pass,user2:pass2": plaintext only (a hash contains commas)."""
    if HASH_PREFIX in text:
        raise AccountsError("--gradio-auth takes plaintext passwords only; put hashes in --gradio-auth-path")
    entries = [entry.strip() for entry in text.strip().strip('"').split(",")]
    return _no_duplicates([parse_entry(f"--gradio-auth entry {n}", entry)
                           for n, entry in enumerate(entries, 1) if entry])


def parse_auth_file(path: str | Path) -> list[AccountEntry]:
    """Blank lines and lines starting with # are skipped; see the module docstring for the rest."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AccountsError(f"cannot read {path}: {exc.__class__.__name__}") from None
    return _no_duplicates([parse_entry(f"{path}, line {n}", line.strip()) for n, line in enumerate(lines, 1)
                           if line.strip() and not line.strip().startswith("#")])


def _no_duplicates(entries: list[AccountEntry]) -> list[AccountEntry]:
    seen = set()
    for entry in entries:
        if entry.user in seen:
            raise AccountsError(f"user {entry.user!r} is listed twice")
        seen.add(entry.user)
    return entries


def check_file_permissions(path: str | Path) -> None:
    """Refuses an accounts file that other users could read (to guess the hashes offline, or
    read old plaintext lines) or write (to add themselves as admin)."""
    if os.name == "nt":          # no POSIX modes to check
        return
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        raise AccountsError(f"cannot read {path}: {exc.__class__.__name__}") from None
    if mode & 0o066:
        raise AccountsError(f"{path} can be read or written by other users (mode {mode:04o}); "
                            f"run: chmod 600 {shlex.quote(str(path))}")


# ---- the accounts --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoginResult:
    ok: bool
    retry_after_s: float = 0.0      # > 0: the next attempt from this address must wait this long


class Accounts:
    def __init__(self, entries: list[AccountEntry], throttle: LoginThrottle | None = None,
                 hasher: argon2.PasswordHasher | None = None, warnings: list[str] = ()):
        if not entries:
            raise AccountsError("no accounts given")
        self._hasher = hasher or argon2.PasswordHasher()
        # Old plaintext lines are hashed here, so every check costs one argon2 verify.
        self._hashes = {e.user: e.secret if e.hashed else self._hasher.hash(e.secret) for e in entries}
        self.admins = frozenset(e.user for e in entries if e.admin)
        self.throttle = throttle or LoginThrottle()
        self.warnings = list(warnings)           # for the console at start
        self._dummy_hash = _dummy_hash_like(self._hashes.values())
        self._verify_limiter = None              # anyio.CapacityLimiter, made in the event loop

    @classmethod
    def from_passwords(cls, passwords: dict[str, str], **kwargs) -> Accounts:
        return cls([AccountEntry(user, password) for user, password in passwords.items()], **kwargs)

    @classmethod
    def from_flags(cls, gradio_auth: str | None, gradio_auth_path: str | None) -> Accounts | None:
        """Accounts from both flags together; None when neither is given (no log-in). Refuses
        an accounts file others can read or write; `.warnings` says what to tell the console."""
        if not (gradio_auth or gradio_auth_path):
            return None
        entries, warnings = [], []
        if gradio_auth:
            entries += parse_auth_string(gradio_auth)
            warnings.append(COMMAND_LINE_WARNING)
        if gradio_auth_path:
            check_file_permissions(gradio_auth_path)
            from_file = parse_auth_file(gradio_auth_path)
            clash = {e.user for e in entries} & {e.user for e in from_file}
            if clash:
                raise AccountsError(f"user {sorted(clash)[0]!r} is in both --gradio-auth and {gradio_auth_path}")
            entries += from_file
            plaintext = [e.user for e in from_file if not e.hashed]
            if plaintext:
                warnings.append(f"{gradio_auth_path} holds plaintext passwords for {', '.join(plaintext)}; "
                                f"hash them with: python tools/accounts.py convert {shlex.quote(gradio_auth_path)}")
        return cls(entries, warnings=warnings)

    @property
    def users(self) -> list[str]:
        return sorted(self._hashes)

    def check(self, user: str, password: str) -> bool:
        """True for a right user and password. An unknown user costs the same argon2 work (a
        dummy hash) and gets the same False as a wrong password."""
        stored = self._hashes.get(user)
        try:
            matched = self._hasher.verify(stored or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            matched = False
        return matched and stored is not None

    def attempt(self, user: str, password: str, client_address: str | None = None) -> LoginResult:
        """check() behind the throttle. While this address must wait, even the right password is
        refused unchecked, so guessing on can't tell when it hit."""
        wait = self.throttle.retry_after(user, client_address)
        if wait > 0:
            return LoginResult(False, wait)
        if self.check(user, password):
            self.throttle.record_success(user, client_address)
            return LoginResult(True)
        self.throttle.record_failure(user, client_address)
        # The typed name is logged only when it is an account: it may be a password typed in the wrong box.
        log.warning("Failed log-in for %s from %s", user if user in self._hashes else "an unknown user name",
                    client_address or "an unknown address")
        return LoginResult(False, self.throttle.retry_after(user, client_address))

    def login(self, user: str, password: str, client_address: str | None = None) -> bool:
        return self.attempt(user, password, client_address).ok

    def retry_after(self, user: str, client_address: str | None = None) -> float:
        """Seconds until this address may try this account again (0: now); for the log-in page."""
        return self.throttle.retry_after(user, client_address)

    async def gradio_auth(self, username: str, password: str) -> bool:
        """For launch(auth=...). Gradio awaits it inside its async /login route, so the argon2
        work runs in a worker thread (a few at a time), never on the event loop every stream
        shares. The address comes from client_address_middleware()."""
        import anyio

        address = _client_address.get()
        if self.throttle.retry_after(username, address) > 0:
            return False                  # refused before any work: a flood costs nothing
        if self._verify_limiter is None:
            self._verify_limiter = anyio.CapacityLimiter(VERIFY_SLOTS)
        return await anyio.to_thread.run_sync(self.login, username, password, address,
                                              limiter=self._verify_limiter)


def _dummy_hash_like(hashes) -> str:
    """A hash of a random password with the parameters most accounts use, so checking an
    unknown user takes as long as checking a real one."""
    params = [argon2.extract_parameters(h) for h in hashes]
    by_text = {repr(p): p for p in params}                # Parameters can't be dict keys themselves
    common = by_text[Counter(map(repr, params)).most_common(1)[0][0]]
    return argon2.PasswordHasher.from_parameters(common).hash(secrets.token_hex(16))


# ---- throttling ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backoff:
    free: int          # failures allowed before any wait (typos happen)
    base_s: float      # the first wait; each further failure doubles it
    cap_s: float

    def wait_after(self, failures: int) -> float:
        if failures <= self.free:
            return 0.0
        return min(self.cap_s, self.base_s * 2 ** min(failures - self.free - 1, 40))


@dataclass
class _Record:
    failures: int
    last: float


class LoginThrottle:
    """Exponential back-off for failed log-ins, kept so that a guesser slows only himself.

    - per (account, address): 1 s, 2 s, 4 s ... up to 5 minutes after the free failures; a
      success from that address clears it. This is what stops guessing one password.
    - per address, over all accounts: the same, with more free failures (a lab behind one
      NAT typos too); stops trying one password on many accounts. Not cleared by a success,
      so an attacker's own account can't reset it.
    - per account, from all addresses: at most a few seconds (`per_account.cap_s`). It slows
      guessing from many addresses without ever locking the account for everyone, and an
      address that has logged in to the account before skips it.
    A record is forgotten after `forget_after_s` without failures. Attempts refused while
    waiting are not counted: nothing was checked. Thread-safe."""

    def __init__(self, *, per_pair: Backoff = Backoff(free=3, base_s=1.0, cap_s=300.0),
                 per_address: Backoff = Backoff(free=10, base_s=1.0, cap_s=300.0),
                 per_account: Backoff = Backoff(free=3, base_s=1.0, cap_s=10.0),
                 forget_after_s: float = 3600.0, max_records: int = 50_000, clock=time.monotonic):
        self.rules = {"pair": per_pair, "address": per_address, "account": per_account}
        self.forget_after_s = forget_after_s
        self.max_records = max_records       # bounds the memory a flood of made-up names can take
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[tuple, _Record] = {}          # oldest failure first
        self._known_good: dict[tuple[str, str], float] = {}

    def retry_after(self, user: str, address: str | None) -> float:
        now = self._clock()
        with self._lock:
            waits = [self._remaining(key, now) for key in self._keys(user, address)
                     if key[0] != "account" or (user, address or "") not in self._known_good]
        return max(waits)

    def record_failure(self, user: str, address: str | None) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(user, address):
                record = self._records.pop(key, None)
                if record is None or now - record.last > self.forget_after_s:
                    record = _Record(0, now)
                record.failures += 1
                record.last = now
                self._records[key] = record           # re-inserted: the dict stays oldest first
            self._trim(self._records, now, lambda record: record.last)

    def record_success(self, user: str, address: str | None) -> None:
        """Clears this address's record for this account only, and remembers the address as
        one that may skip the account-wide delay."""
        now = self._clock()
        with self._lock:
            self._records.pop(("pair", user, address or ""), None)
            self._known_good.pop((user, address or ""), None)
            self._known_good[(user, address or "")] = now
            self._trim(self._known_good, now, lambda last: last, forget=False)

    @staticmethod
    def _keys(user: str, address: str | None) -> list[tuple]:
        address = address or ""
        return [("pair", user, address), ("address", address), ("account", user)]

    def _remaining(self, key: tuple, now: float) -> float:
        record = self._records.get(key)
        if record is None or now - record.last > self.forget_after_s:
            return 0.0
        return max(0.0, record.last + self.rules[key[0]].wait_after(record.failures) - now)

    def _trim(self, table: dict, now: float, last_of, forget: bool = True) -> None:
        # Oldest entries first: drop the forgotten ones, then the oldest beyond the bound.
        while table:
            key = next(iter(table))
            if len(table) > self.max_records or (forget and now - last_of(table[key]) > self.forget_after_s):
                del table[key]
            else:
                break


# ---- the client address for Gradio's log-in ------------------------------------------------------
_client_address: contextvars.ContextVar[str | None] = contextvars.ContextVar("client_address", default=None)


def trust_forwarded_headers_from(allow_ips: str) -> None:
    """uvicorn replaces the client address with the one in X-Forwarded-For when the connection
    comes from an address in FORWARDED_ALLOW_IPS, which defaults to 127.0.0.1,::1: any local
    user, or anyone through an SSH tunnel, could then claim any address. Gradio builds uvicorn's
    Config without forwarded_allow_ips, so this environment variable is the way to set it; call
    before launch(). "" (the default of --forwarded-allow-ips) believes no header."""
    entries = [entry.strip() for entry in (allow_ips or "").split(",") if entry.strip()]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise AccountsError(f"--forwarded-allow-ips: {entry!r} is not an IP address or network") from None
    os.environ["FORWARDED_ALLOW_IPS"] = ",".join(entries)


class ClientAddressMiddleware:
    """Pure ASGI middleware: remembers the connecting address for the rest of the request, so the
    auth callable (which Gradio calls without the request) can throttle by address. The address
    is the one uvicorn puts in the scope: the socket's peer, rewritten from X-Forwarded-For only
    for the proxies trust_forwarded_headers_from() names."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        client = scope.get("client") if scope["type"] == "http" else None
        token = _client_address.set(client[0] if client else None)
        try:
            await self.app(scope, receive, send)
        finally:
            _client_address.reset(token)


def client_address_middleware():
    """For launch(app_kwargs={"middleware": [client_address_middleware()]})."""
    from starlette.middleware import Middleware
    return Middleware(ClientAddressMiddleware)


# ---- whose chats these are -----------------------------------------------------------------------
def owner_for(request, browser_key: str | None, require_login: bool = False) -> str:
    """The owner of a request's chats: the logged-in user name when accounts are on, otherwise
    BROWSER_OWNER_PREFIX + a random key the page keeps in the browser's localStorage (the UI
    makes it with crypto.randomUUID() on first visit and passes it in). Anyone holding that key
    sees those chats, so it must be random and is checked for length and characters."""
    username = getattr(request, "username", None) if request is not None else None
    if username:
        return username
    if require_login:
        raise PermissionError("Not logged in.")
    if not isinstance(browser_key, str) or not _BROWSER_KEY.fullmatch(browser_key):
        raise ValueError("The browser key must be 16 to 128 characters of A-Z, a-z, 0-9, '-' or '_'.")
    return BROWSER_OWNER_PREFIX + browser_key
