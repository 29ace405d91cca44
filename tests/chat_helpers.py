"""What the chat-service tests share: a person, and the last update of a reply."""
from __future__ import annotations

from modules.roles import Identity


def person(name: str) -> Identity:
    """A logged-in, non-admin person on loopback."""
    return Identity(owner=name, user=name, address="127.0.0.1", is_admin=False)


def run(updates):
    """Follows a reply to its end; its last update."""
    last = None
    for last in updates:
        pass
    return last
