"""A chat's messages as a tree: versions of a message are siblings, and one path is on screen.

Regenerate adds a sibling of the reply it replaces; editing an earlier message of the user
adds a sibling of that message (a branch). Nothing is deleted, so every version can be
shown again. Which one is shown is remembered in the store (history_schema version 4):

    chats.active_root      the first message on screen
    messages.active_child  the child on screen after this message
    NULL: the newest one;  END (0): the path stops here (Remove last);  a version's id: it

A pointer to a message that is gone reads as NULL, so deleting a failed version falls back
to the newest one left. The path is what the Chat tab shows and what the prompt is built from.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Iterable, Protocol

END = 0                  # ids start at 1 (AUTOINCREMENT)


class Node(Protocol):
    id: int
    parent_id: int | None
    active_child: int | None


@dataclass(frozen=True)
class Versions:
    """Where a message stands among its versions (its siblings, oldest first)."""
    message_id: int
    ids: tuple[int, ...]

    @property
    def number(self) -> int:          # 1-based, as the "‹ 2/3 ›" control shows it
        return self.ids.index(self.message_id) + 1

    @property
    def count(self) -> int:
        return len(self.ids)

    def step(self, by: int) -> int | None:
        """The version `by` places away, or None past either end."""
        index = self.ids.index(self.message_id) + by
        return self.ids[index] if 0 <= index < len(self.ids) else None


def children_of(nodes: Iterable[Node]) -> dict[int | None, list[int]]:
    """Each message's children (None: the first messages), oldest first."""
    children: dict[int | None, list[int]] = {}
    for node in sorted(nodes, key=lambda n: n.id):
        children.setdefault(node.parent_id, []).append(node.id)
    return children


def path_ids(nodes: Iterable[Node], active_root: int | None) -> list[int]:
    """The ids of the messages on screen, first to last."""
    nodes = list(nodes)
    pointers = {node.id: node.active_child for node in nodes}
    children = children_of(nodes)
    path: list[int] = []
    seen: set[int] = set()
    current = _pick(children.get(None, []), active_root)
    while current is not None and current not in seen:      # a loop only from a hand-edited file
        path.append(current)
        seen.add(current)
        current = _pick(children.get(current, []), pointers.get(current))
    return path


def versions(nodes: Iterable[Node], message_id: int) -> Versions:
    nodes = list(nodes)
    parent = next(node.parent_id for node in nodes if node.id == message_id)
    return Versions(message_id, tuple(children_of(nodes).get(parent, [])))


def versions_of(nodes: Iterable[Node]) -> dict[int, Versions]:
    """Every message's Versions, read in one pass."""
    nodes = list(nodes)
    children = {parent: tuple(ids) for parent, ids in children_of(nodes).items()}
    return {node.id: Versions(node.id, children[node.parent_id]) for node in nodes}


def _pick(children: list[int], pointer: int | None) -> int | None:
    if pointer == END:
        return None
    if pointer in children:
        return pointer
    return children[-1] if children else None


# ---- in the store's transaction ---------------------------------------------------------------
# history_store.py calls these inside its write transaction, after checking the owner.

@dataclass(frozen=True)
class _Row:
    id: int
    parent_id: int | None
    active_child: int | None


def stored_path(db: sqlite3.Connection, chat_id: str) -> list[int]:
    rows = db.execute("SELECT id, parent_id, active_child FROM messages WHERE chat_id = ?", (chat_id,))
    root = db.execute("SELECT active_root FROM chats WHERE id = ?", (chat_id,)).fetchone()[0]
    return path_ids([_Row(*row) for row in rows], root)


def point_to(db: sqlite3.Connection, chat_id: str, parent_id: int | None, child: int) -> None:
    """Shows `child` (or END) after `parent_id` (None: as the chat's first message)."""
    if parent_id is None:
        db.execute("UPDATE chats SET active_root = ? WHERE id = ?", (child, chat_id))
    else:
        db.execute("UPDATE messages SET active_child = ? WHERE id = ?", (child, parent_id))


def show(db: sqlite3.Connection, chat_id: str, message_id: int) -> None:
    """Puts the message on the path: each of its ancestors points the way to it."""
    rows = dict(db.execute("SELECT id, parent_id FROM messages WHERE chat_id = ?", (chat_id,)).fetchall())
    current, seen = message_id, set()
    while current is not None and current not in seen:
        seen.add(current)
        point_to(db, chat_id, rows.get(current), current)
        current = rows.get(current)


def delete_subtree(db: sqlite3.Connection, chat_id: str, message_id: int, *, keep_top: bool = False) -> int:
    """Deletes the message and everything after it in every branch (only what comes after,
    with keep_top). Returns how many messages went."""
    ids = [row[0] for row in db.execute(
        """WITH RECURSIVE below(id) AS (
               SELECT ? UNION ALL
               SELECT m.id FROM messages m JOIN below ON m.parent_id = below.id WHERE m.chat_id = ?)
           SELECT id FROM below""", (message_id, chat_id))]
    if keep_top:
        ids.remove(message_id)
    db.executemany("DELETE FROM messages WHERE id = ?", ((i,) for i in ids))
    return len(ids)
