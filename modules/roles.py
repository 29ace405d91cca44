"""Who is asking, and may they change what everyone uses?

Every event handler that reads or writes something derives an Identity from Gradio's
request on the server (never from a value the page sends alone), and every handler that
changes what everyone shares (the model, load settings, downloads, the shared presets,
characters, templates and prompts) calls `require_admin` first. Hiding a button is only
a courtesy: a client can call any queue endpoint directly.

Who is an admin:
- with accounts: the names given to --admin-users, and accounts marked `admin` in the
  accounts file;
- without accounts: the person on the machine itself (a loopback client), and nobody on
  the network, unless --everyone-admin says the network is trusted.

The client address is the socket's peer address as uvicorn reports it. uvicorn rewrites
it from X-Forwarded-For only for proxies listed in --forwarded-allow-ips (default: none),
so a network visitor cannot claim to be 127.0.0.1 with a header.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

BROWSER_OWNER_PREFIX = "browser:"     # has a ':', which no user name can contain
_BROWSER_KEY = re.compile(r"[A-Za-z0-9_-]{16,128}")


class NotAdmin(PermissionError):
    """A non-admin asked for something only admins may do. The message says who may."""


@dataclass(frozen=True)
class Identity:
    owner: str                 # whose chats and private files: the user name or "browser:<key>"
    user: str | None           # the logged-in account, None without accounts
    address: str | None        # the client's address
    is_admin: bool

    @property
    def limits_key(self) -> str:
        """Whose allowance a request counts against: the account, or this browser."""
        return self.user or self.owner

    @property
    def address_key(self) -> str | None:
        """Without accounts, a second allowance shared by everyone at one address: a browser
        key is chosen by the client, so making up keys must not multiply what one machine
        may take. None with accounts, where the account is the allowance."""
        if self.user:
            return None
        return f"address:{self.address or 'unknown'}"

    @property
    def display_name(self) -> str:
        return self.user or ("this browser" if self.owner.startswith(BROWSER_OWNER_PREFIX) else self.owner)


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


class AccessPolicy:
    def __init__(self, *, accounts_on: bool, admin_users=(), everyone_admin: bool = False):
        self.accounts_on = accounts_on
        self.admin_users = frozenset(admin_users)
        self.everyone_admin = everyone_admin

    def identify(self, request, browser_key: str | None = None, *, need_owner: bool = True) -> Identity:
        """The Identity behind a Gradio request. Without accounts the owner is the browser's
        random key (checked for shape); `need_owner=False` skips that for handlers that only
        need the role."""
        user = getattr(request, "username", None) if request is not None else None
        client = getattr(request, "client", None) if request is not None else None
        address = getattr(client, "host", None)
        if self.accounts_on and not user:
            raise PermissionError("Not logged in.")
        if user:
            owner = user
        elif need_owner:
            if not isinstance(browser_key, str) or not _BROWSER_KEY.fullmatch(browser_key):
                raise ValueError("The page has not finished loading (no browser key yet); reload it.")
            owner = BROWSER_OWNER_PREFIX + browser_key
        else:
            owner = BROWSER_OWNER_PREFIX + (browser_key or "unknown")
        return Identity(owner=owner, user=user, address=address, is_admin=self.is_admin(user, address))

    def is_admin(self, user: str | None, address: str | None) -> bool:
        if self.accounts_on:
            return bool(user) and user in self.admin_users
        return self.everyone_admin or is_loopback(address)

    def describe(self) -> str:
        """One line for the console: who may change what everyone uses."""
        if self.accounts_on:
            names = ", ".join(sorted(self.admin_users)) or "nobody (add --admin-users or an admin mark)"
            return f"Admins (may load models, download, edit shared files): {names}."
        if self.everyone_admin:
            return "Admins: every visitor (--everyone-admin): anyone who can reach the page can change the model."
        return ("Admins: only browsers on this machine (loopback). Visitors from the network use the "
                "model and keep private files but cannot change what everyone uses.")


def require_admin(identity: Identity, action: str) -> None:
    """Raises NotAdmin unless the identity is an admin. `action` completes "Only an admin can ..."."""
    if not identity.is_admin:
        raise NotAdmin(f"Only an admin can {action}. Ask the person who runs this server.")
