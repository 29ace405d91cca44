"""Log-in accounts for a shared server: the --gradio-auth / --gradio-auth-path flags, a
password check that leaks nothing through timing or wording, and a rate limiter against
password guessing.

Usage (from server.py):
    accounts = Accounts.from_flags(args.gradio_auth, args.gradio_auth_path)   # None: no log-in
    demo.launch(auth=accounts.gradio_auth if accounts else None,
                app_kwargs={"middleware": [client_address_middleware()]})
and in event handlers:
    owner = owner_for(request, browser_key)
"""
from __future__ import annotations

import contextvars
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from pathlib import Path

BROWSER_OWNER_PREFIX = "browser:"     # has a ':', which no user name can contain
_BROWSER_KEY = re.compile(r"[A-Za-z0-9_-]{16,128}")


class AccountsError(ValueError):
    """A malformed --gradio-auth value or accounts file. The message never contains a password."""


# ---- parsing -------------------------------------------------------------------------------------
def parse_auth_string(text: str) -> dict[str, str]:
    """--gradio-auth "user:pass,user2:pass2". A password here can't contain a comma; use the file."""
    entries = [entry.strip() for entry in text.strip().strip('"').split(",")]
    return _parse_entries((f"entry {n}", entry) for n, entry in enumerate(entries, 1) if entry)


def parse_auth_file(path: str | Path) -> dict[str, str]:
    """One user:password a line; blank lines and lines starting with # are skipped. The password
    is everything after the first ':' (it may contain ':' and ','), without surrounding spaces."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return _parse_entries((f"{path}, line {n}", line.strip()) for n, line in enumerate(lines, 1)
                          if line.strip() and not line.strip().startswith("#"))


def _parse_entries(entries) -> dict[str, str]:
    credentials: dict[str, str] = {}
    for where, entry in entries:
        user, colon, password = entry.partition(":")
        user, password = user.strip(), password.strip()
        if not colon or not user or not password:
            raise AccountsError(f"{where}: expected user:password")
        if user in credentials:
            raise AccountsError(f"{where}: user {user!r} is listed twice")
        credentials[user] = password
    return credentials


# ---- the accounts --------------------------------------------------------------------------------
class Accounts:
    def __init__(self, credentials: dict[str, str], limiter: LoginRateLimiter | None = None):
        if not credentials:
            raise AccountsError("no accounts given")
        # Compare fixed-length digests so the comparison time says nothing about the length.
        self._digests = {user: _digest(password) for user, password in credentials.items()}
        self._unknown_user_digest = _digest(secrets.token_hex(32))   # never matches
        self.limiter = limiter or LoginRateLimiter()

    @classmethod
    def from_flags(cls, gradio_auth: str | None, gradio_auth_path: str | None) -> Accounts | None:
        """Accounts from both flags together; None when neither is given (no log-in)."""
        credentials: dict[str, str] = {}
        if gradio_auth:
            credentials.update(parse_auth_string(gradio_auth))
        if gradio_auth_path:
            for user, password in parse_auth_file(gradio_auth_path).items():
                if user in credentials:
                    raise AccountsError(f"user {user!r} is in both --gradio-auth and {gradio_auth_path}")
                credentials[user] = password
        return cls(credentials) if (gradio_auth or gradio_auth_path) else None

    @property
    def users(self) -> list[str]:
        return sorted(self._digests)

    def check(self, user: str, password: str) -> bool:
        """True for a right user and password. An unknown user costs the same work and gets the
        same False as a wrong password."""
        expected = self._digests.get(user, self._unknown_user_digest)
        return hmac.compare_digest(_digest(password), expected) and user in self._digests

    def login(self, user: str, password: str, client_address: str | None = None) -> bool:
        """check() behind the rate limiter. While a user name or address is locked out even the
        right password is refused, so guessing on can't tell when it hit."""
        if not self.limiter.allowed(user, client_address):
            return False
        if self.check(user, password):
            self.limiter.record_success(user)
            return True
        self.limiter.record_failure(user, client_address)
        return False

    def gradio_auth(self, username: str, password: str) -> bool:
        """For launch(auth=...). Gradio passes no request, so the client address comes from
        client_address_middleware(); without it the limit is per user name only."""
        return self.login(username, password, _client_address.get())


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode("utf-8")).digest()


# ---- rate limiting -------------------------------------------------------------------------------
class LoginRateLimiter:
    """After `max_failures` failed log-ins within `window_s`, a user name (and, separately, a
    client address) is refused for `lockout_s`. Thread-safe.

    Locking a user name lets someone lock a colleague out for a while by guessing on purpose;
    on a lab server that is a better trade than unlimited guessing."""

    MAX_TRACKED_KEYS = 10_000     # bound the memory a flood of made-up user names can take

    def __init__(self, max_failures: int = 5, window_s: float = 60.0, lockout_s: float = 300.0,
                 clock=time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._locked_until: dict[tuple[str, str], float] = {}

    def allowed(self, user: str, client_address: str | None = None) -> bool:
        now = self._clock()
        with self._lock:
            return not any(self._locked_until.get(key, 0.0) > now
                           for key in _keys(user, client_address))

    def record_failure(self, user: str, client_address: str | None = None) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > self.MAX_TRACKED_KEYS:
                self._forget_old(now)
            for key in _keys(user, client_address):
                failures = self._failures.setdefault(key, deque())
                failures.append(now)
                while failures and failures[0] <= now - self.window_s:
                    failures.popleft()
                if len(failures) >= self.max_failures:
                    self._locked_until[key] = now + self.lockout_s
                    failures.clear()

    def record_success(self, user: str) -> None:
        # Only the user's count is cleared: a shared address keeps its record of failures.
        with self._lock:
            self._failures.pop(("user", user), None)

    def _forget_old(self, now: float) -> None:
        for key in [k for k, times in self._failures.items() if not times or times[-1] <= now - self.window_s]:
            del self._failures[key]
        for key in [k for k, until in self._locked_until.items() if until <= now]:
            del self._locked_until[key]


def _keys(user: str, client_address: str | None) -> list[tuple[str, str]]:
    keys = [("user", user)]
    if client_address:
        keys.append(("address", client_address))
    return keys


# ---- the client address for Gradio's log-in ------------------------------------------------------
_client_address: contextvars.ContextVar[str | None] = contextvars.ContextVar("client_address", default=None)


class ClientAddressMiddleware:
    """Pure ASGI middleware: remembers the connecting address for the rest of the request, so the
    auth callable (which Gradio calls without the request) can rate-limit by address. It uses the
    socket's peer address, not X-Forwarded-For, which any client can forge; behind a reverse proxy
    every client shares the proxy's address and the per-user-name limit does the work."""

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
