"""An extension's `params`, one copy per person.

In text-generation-webui an extension keeps its settings in a module-level `params` dict
that its ui() controls change: on a shared server that would let one person's checkbox
change everyone's replies. Here that dict is replaced by a SessionParams: it still reads
and writes like a dict, but each person (the owner of the request or of the page event
being handled) gets their own copy, made from the server-wide defaults (the script's
values with the settings file's `<name>-<key>` overrides) the first time they change
something. With nobody in context (setup(), page building, the extension's own threads)
it reads and writes the defaults.

Whose copy: the request runner sets CURRENT_OWNER while it calls hooks; a Gradio event
handler made by the extension's ui() runs with Gradio's request in context, whose session
was tied to its owner when the page loaded (SessionOwners.bind).
"""
from __future__ import annotations

import contextvars
import copy
import threading
from collections import OrderedDict

CURRENT_OWNER: contextvars.ContextVar[str | None] = contextvars.ContextVar("extension_owner", default=None)
MAX_SESSIONS = 4096          # remembered page sessions (oldest forgotten first)
MAX_OWNERS = 4096            # per-person copies kept per extension


class SessionOwners:
    """Gradio session -> owner, recorded when a page loads, so an extension's own event
    handlers (which receive no browser key) know whose copy to change."""

    def __init__(self):
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def bind(self, session_hash: str | None, owner: str) -> None:
        if not session_hash:
            return
        with self._lock:
            self._owners[session_hash] = owner
            self._owners.move_to_end(session_hash)
            while len(self._owners) > MAX_SESSIONS:
                self._owners.popitem(last=False)

    def owner_of(self, request) -> str | None:
        if request is None:
            return None
        user = getattr(request, "username", None)
        if user:
            return user
        session = getattr(request, "session_hash", None)
        with self._lock:
            return self._owners.get(session) if session else None


def current_owner(sessions: SessionOwners | None) -> str | None:
    owner = CURRENT_OWNER.get()
    if owner is not None or sessions is None:
        return owner
    try:
        from gradio.context import LocalContext
        request = LocalContext.request.get(None)
    except (ImportError, LookupError):
        return None
    return sessions.owner_of(request)


class SessionParams(dict):
    """A dict whose contents depend on who is asking. The dict's own storage holds the
    defaults, so code that bypasses the methods (json.dumps) sees the defaults."""

    def __init__(self, defaults: dict, sessions: SessionOwners | None = None):
        super().__init__(defaults)
        self._sessions = sessions
        self._copies: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.RLock()

    # which dict this call means
    def _view(self, create: bool) -> dict:
        owner = current_owner(self._sessions)
        if owner is None:
            return _Defaults(self)
        with self._lock:
            mine = self._copies.get(owner)
            if mine is None:
                if not create:
                    return _Defaults(self)
                mine = copy.deepcopy(dict(super().items()))
                self._copies[owner] = mine
                while len(self._copies) > MAX_OWNERS:
                    self._copies.popitem(last=False)
            self._copies.move_to_end(owner)
            return mine

    def for_owner(self, owner: str) -> dict:
        """A copy of what `owner` sees (for tests and the UI)."""
        token = CURRENT_OWNER.set(owner)
        try:
            return dict(self.items())
        finally:
            CURRENT_OWNER.reset(token)

    # reading
    def __getitem__(self, key):
        return self._view(False)[key]

    def get(self, key, default=None):
        return self._view(False).get(key, default)

    def __contains__(self, key):
        return key in self._view(False)

    def __iter__(self):
        return iter(list(self._view(False)))

    def __len__(self):
        return len(self._view(False))

    def keys(self):
        return list(self._view(False).keys())

    def values(self):
        return list(self._view(False).values())

    def items(self):
        return list(self._view(False).items())

    def copy(self):
        return dict(self._view(False))

    def __repr__(self):
        return repr(dict(self._view(False)))

    def __eq__(self, other):
        return dict(self._view(False)) == other

    __hash__ = None

    # writing
    def __setitem__(self, key, value):
        self._view(True)[key] = value

    def __delitem__(self, key):
        del self._view(True)[key]

    def update(self, *args, **kwargs):
        self._view(True).update(*args, **kwargs)

    def setdefault(self, key, default=None):
        return self._view(True).setdefault(key, default)

    def pop(self, key, *default):
        return self._view(True).pop(key, *default)

    def clear(self):
        self._view(True).clear()


class _Defaults:
    """The defaults (the SessionParams' own storage) through the same small interface."""

    def __init__(self, owner: SessionParams):
        self._d = owner

    def __getitem__(self, key):
        return dict.__getitem__(self._d, key)

    def __setitem__(self, key, value):
        dict.__setitem__(self._d, key, value)

    def __delitem__(self, key):
        dict.__delitem__(self._d, key)

    def __contains__(self, key):
        return dict.__contains__(self._d, key)

    def __iter__(self):
        return dict.__iter__(self._d)

    def __len__(self):
        return dict.__len__(self._d)

    def get(self, key, default=None):
        return dict.get(self._d, key, default)

    def keys(self):
        return dict.keys(self._d)

    def values(self):
        return dict.values(self._d)

    def items(self):
        return dict.items(self._d)

    def update(self, *args, **kwargs):
        dict.update(self._d, *args, **kwargs)

    def setdefault(self, key, default=None):
        return dict.setdefault(self._d, key, default)

    def pop(self, key, *default):
        return dict.pop(self._d, key, *default)

    def clear(self):
        dict.clear(self._d)
