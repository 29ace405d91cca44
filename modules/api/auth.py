"""Who an API request is: its key, compared in constant time, gives its Identity.

- --api-key KEY[,KEY2...]: every request needs one of the keys, as 'Authorization: Bearer KEY'
  (OpenAI's clients) or 'x-api-key: KEY' (Anthropic's). Each key is its own person for the
  limits and the fair share, like an account.
- Without --api-key a request counts like a browser at its client address (that address's
  allowance is shared with the browsers there). A server with accounts refuses API requests
  without keys: the accounts would mean nothing otherwise.
- --admin-key KEY: the key for loading and unloading models through the API; it also works
  as an API key. Without it, the page's rule decides (without accounts: this machine only).
"""
from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from modules.api.errors import ApiError
from modules.roles import AccessPolicy, Identity, require_admin

KEY_OWNER_PREFIX = "api-key:"       # has a ':', which no account name can contain
ADDRESS_OWNER_PREFIX = "api:"


def split_keys(flag: str | None) -> list[str]:
    return [key.strip() for key in (flag or "").split(",") if key.strip()]


def _matches(given: str, keys: list[str]) -> str | None:
    """The key that matches, comparing against every key without stopping early."""
    found = None
    for key in keys:
        if hmac.compare_digest(given.encode(), key.encode()):
            found = key
    return found


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-api-key")


class ApiKeys:
    def __init__(self, policy: AccessPolicy, api_keys: list[str] = (), admin_key: str | None = None):
        self.policy = policy
        self.api_keys = list(api_keys)
        self.admin_key = admin_key or None

    @property
    def required(self) -> bool:
        return bool(self.api_keys) or self.policy.accounts_on

    def identify(self, request: Request) -> Identity:
        """Raises ApiError(401) for a missing or wrong key where one is needed."""
        address = request.client.host if request.client else None
        given = presented_key(request)
        if given and self.admin_key and _matches(given, [self.admin_key]):
            return _key_identity(self.admin_key, address, admin=True)
        key = _matches(given, self.api_keys) if given else None
        if key is not None:
            return _key_identity(key, address, admin=self._page_rule_admin(address))
        if self.api_keys:
            raise ApiError(401, "Invalid API key." if given else
                           "This server needs an API key: send 'Authorization: Bearer KEY' or 'x-api-key: KEY'.",
                           code="invalid_api_key")
        if self.policy.accounts_on:
            raise ApiError(401, "This server has accounts, so its API needs a key: start it with "
                           "--api-key (or use --admin-key).", code="invalid_api_key")
        owner = ADDRESS_OWNER_PREFIX + (address or "unknown")
        return Identity(owner=owner, user=None, address=address, is_admin=self._page_rule_admin(address))

    def _page_rule_admin(self, address: str | None) -> bool:
        """Without --admin-key the page's rule applies (loopback without accounts, or
        --everyone-admin); with one, only that key is admin."""
        return self.admin_key is None and self.policy.is_admin(None, address)

    def require_admin(self, request: Request, action: str) -> Identity:
        who = self.identify(request)
        try:
            require_admin(who, action)
        except PermissionError:
            hint = " Send the --admin-key." if self.admin_key else ""
            raise ApiError(403, f"Only an admin can {action}.{hint}", code="not_admin") from None
        return who


def _key_identity(key: str, address: str | None, *, admin: bool) -> Identity:
    """One person per key; the key itself never appears in names, logs or files."""
    name = KEY_OWNER_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:12]
    return Identity(owner=name, user=name, address=address, is_admin=admin)
