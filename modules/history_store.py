"""Chats kept on the server in SQLite, one owner's rows never visible to another.

Every public method takes the owner first and touches only that owner's rows. A chat id
that belongs to someone else behaves exactly like one that does not exist (ChatNotFound),
so a forged or leaked id reveals nothing.

Usage (from the UI):
    store = HistoryStore()                 # data/ in the project, or HistoryStore(folder)
    store.mark_interrupted()               # once at start-up
    chat_id = store.create_chat(owner, "Title")
    store.append_message(owner, chat_id, "user", text)
    reply_id = store.append_message(owner, chat_id, "assistant", "", status="streaming")
    store.update_message(owner, chat_id, reply_id, content=partial)          # while streaming
    store.update_message(owner, chat_id, reply_id, content=full, status="done")
"""
from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_FOLDER = Path(__file__).resolve().parent.parent / "data"
DB_FILENAME = "history.sqlite3"

# A guard against filling the disk, not a limit on what a person types (that is
# modules.request_limits.MAX_INPUT_CHARS). It is larger because model replies with long
# contexts can legitimately run to several hundred thousand characters.
MAX_MESSAGE_CHARS = 500_000
MAX_META_CHARS = 20_000            # meta is small bookkeeping (model, seed, token counts)
MAX_TITLE_CHARS = 200              # longer titles are cut: a title is only a label
DEFAULT_TITLE = "New chat"

ROLES = ("system", "user", "assistant")
# streaming: being generated now; stopped: the user pressed Stop (partial text kept);
# interrupted: the server died while it was streaming (partial text kept); error: generation failed.
STATUSES = ("done", "streaming", "stopped", "interrupted", "error")
MODES = ("chat", "chat-instruct", "instruct")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    title       TEXT NOT NULL,
    mode        TEXT NOT NULL,
    character   TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS chats_by_owner ON chats(owner, updated_at);
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id     TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    role        TEXT NOT NULL,
    content     TEXT NOT NULL,
    status      TEXT NOT NULL,
    meta        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages(chat_id, id);
CREATE INDEX IF NOT EXISTS messages_streaming ON messages(status) WHERE status = 'streaming';
PRAGMA user_version = 1;
"""


class ChatNotFound(LookupError):
    """No such chat for this owner (it may not exist, or may belong to someone else)."""


class MessageNotFound(LookupError):
    """No such message in this chat."""


class MessageTooLong(ValueError):
    pass


@dataclass
class Message:
    id: int
    role: str
    content: str
    status: str
    meta: dict
    created_at: float
    updated_at: float


@dataclass
class ChatSummary:
    id: str
    title: str
    mode: str
    character: str
    created_at: float
    updated_at: float


@dataclass
class Chat(ChatSummary):
    messages: list[Message] = field(default_factory=list)


class HistoryStore:
    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder is not None else DEFAULT_FOLDER
        # Chats are private: keep the folder readable by the server's user only.
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.folder / DB_FILENAME
        # One connection guarded by a lock: SQLite serializes writes anyway, the traffic is a
        # few small writes per generated reply, and a single connection has no per-thread
        # connections to leak when Gradio's worker threads come and go.
        self._lock = threading.RLock()      # re-entrant: update_message reads, then writes
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        try:
            os.chmod(self.path, 0o600)        # SQLite gives the -wal and -shm files the same mode
        except OSError:
            pass                              # not ours to change (another user made it)
        with self._lock:
            self._db.execute("PRAGMA busy_timeout=5000")    # another process on the same file
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- chats ----------------------------------------------------------------------------
    def create_chat(self, owner: str, title: str = DEFAULT_TITLE, mode: str = "chat",
                    character: str = "") -> str:
        _check_owner(owner)
        if mode not in MODES:
            raise ValueError(f"Unknown chat mode {mode!r}; expected one of {', '.join(MODES)}.")
        chat_id = secrets.token_urlsafe(16)          # unguessable: ids may appear in URLs and logs
        now = time.time()
        with self._write(durable=True) as db:
            db.execute("INSERT INTO chats VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (chat_id, owner, _clean_title(title), mode, character, now, now))
        return chat_id

    def list_chats(self, owner: str, query: str = "", limit: int = 500) -> list[ChatSummary]:
        """The owner's chats, most recently active first; `query` matches titles and message
        text (case-insensitive for ASCII letters)."""
        _check_owner(owner)
        sql = "SELECT * FROM chats WHERE owner = ?"
        args: list = [owner]
        if query.strip():
            pattern = "%" + _escape_like(query.strip()) + "%"
            sql += (" AND (title LIKE ? ESCAPE '\\' OR id IN"
                    " (SELECT chat_id FROM messages WHERE content LIKE ? ESCAPE '\\'))")
            args += [pattern, pattern]
        sql += " ORDER BY updated_at DESC, rowid DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [ChatSummary(**_chat_fields(row)) for row in rows]

    def get_chat(self, owner: str, chat_id: str) -> Chat:
        _check_owner(owner)
        with self._lock:
            row = self._owned_chat(owner, chat_id)
            messages = self._db.execute(
                "SELECT * FROM messages WHERE chat_id = ? ORDER BY id", (chat_id,)).fetchall()
        return Chat(**_chat_fields(row), messages=[_message(m) for m in messages])

    def rename_chat(self, owner: str, chat_id: str, title: str) -> None:
        _check_owner(owner)
        with self._write(durable=True) as db:
            self._owned_chat(owner, chat_id)
            db.execute("UPDATE chats SET title = ? WHERE id = ?", (_clean_title(title), chat_id))

    def delete_chat(self, owner: str, chat_id: str) -> None:
        _check_owner(owner)
        with self._write(durable=True) as db:
            self._owned_chat(owner, chat_id)
            db.execute("DELETE FROM chats WHERE id = ?", (chat_id,))   # messages go by cascade

    # ---- messages -------------------------------------------------------------------------
    def append_message(self, owner: str, chat_id: str, role: str, content: str,
                       status: str = "done", meta: dict | None = None) -> int:
        _check_owner(owner)
        _check_role(role)
        _check_status(status)
        _check_content(content)
        meta_json = _meta_json(meta)
        now = time.time()
        with self._write(durable=status != "streaming") as db:
            self._owned_chat(owner, chat_id)
            cursor = db.execute(
                "INSERT INTO messages (chat_id, role, content, status, meta, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (chat_id, role, content, status, meta_json, now, now))
            db.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (now, chat_id))
            return cursor.lastrowid

    def update_message(self, owner: str, chat_id: str, message_id: int, content: str | None = None,
                       status: str | None = None, meta: dict | None = None) -> None:
        """Changes what is given. While streaming, call it with the reply so far; finish with
        status="done" (or "stopped" / "error")."""
        _check_owner(owner)
        changes: dict = {}
        if content is not None:
            _check_content(content)
            changes["content"] = content
        if status is not None:
            _check_status(status)
            changes["status"] = status
        if meta is not None:
            changes["meta"] = _meta_json(meta)
        now = time.time()
        changes["updated_at"] = now
        assignments = ", ".join(f"{column} = ?" for column in changes)
        with self._lock:
            current_status = self._owned_message(owner, chat_id, message_id)
            # The synchronous level can't change inside a transaction, hence the read first.
            still_streaming = (status or current_status) == "streaming"
            with self._write(durable=not still_streaming) as db:
                db.execute(f"UPDATE messages SET {assignments} WHERE id = ?",
                           (*changes.values(), message_id))
                db.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (now, chat_id))

    def delete_message(self, owner: str, chat_id: str, message_id: int) -> None:
        _check_owner(owner)
        with self._write(durable=True) as db:
            self._owned_message(owner, chat_id, message_id)
            db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def truncate_after(self, owner: str, chat_id: str, message_id: int) -> int:
        """Deletes every message after `message_id` (which stays); returns how many went.
        For Regenerate and for editing an earlier message."""
        _check_owner(owner)
        with self._write(durable=True) as db:
            self._owned_message(owner, chat_id, message_id)
            cursor = db.execute("DELETE FROM messages WHERE chat_id = ? AND id > ?",
                                (chat_id, message_id))
            return cursor.rowcount

    # ---- start-up -------------------------------------------------------------------------
    def mark_interrupted(self) -> int:
        """Call once at start-up, before serving: replies that were streaming when the previous
        server process died keep their partial text and become "interrupted". Returns how many."""
        with self._write(durable=True) as db:
            cursor = db.execute(
                "UPDATE messages SET status = 'interrupted', updated_at = ? WHERE status = 'streaming'",
                (time.time(),))
            return cursor.rowcount

    # ---- internals ------------------------------------------------------------------------
    def _write(self, durable: bool) -> _WriteTransaction:
        return _WriteTransaction(self, durable)

    def _owned_chat(self, owner: str, chat_id: str) -> sqlite3.Row:
        """The chat row, if this owner has it; the same error whether it is missing or another's."""
        row = self._db.execute("SELECT * FROM chats WHERE id = ? AND owner = ?",
                               (str(chat_id), owner)).fetchone()
        if row is None:
            raise ChatNotFound("No such chat.")
        return row

    def _owned_message(self, owner: str, chat_id: str, message_id: int) -> str:
        """The message's status, if it is in this owner's chat."""
        self._owned_chat(owner, chat_id)
        row = self._db.execute("SELECT status FROM messages WHERE id = ? AND chat_id = ?",
                               (_message_id(message_id), chat_id)).fetchone()
        if row is None:
            raise MessageNotFound("No such message in this chat.")
        return row["status"]


class _WriteTransaction:
    """Holds the store's lock for one write transaction; commits on success, rolls back on error.

    Durability in WAL mode: with synchronous=NORMAL a commit has been written to the WAL file
    before commit() returns, so it is in the operating system's cache and survives the process
    being killed (even SIGKILL); only a power cut or kernel crash can lose it. With
    synchronous=FULL the WAL is also fsynced at every commit, which survives power cuts too.
    Finished messages, chat changes and deletions commit with FULL; streaming updates of a
    partial reply, which come many times a second, commit with NORMAL so they don't pay an
    fsync each (losing the tail of a partial reply on a power cut is acceptable; the next
    FULL commit fsyncs everything before it as well).
    """

    def __init__(self, store: HistoryStore, durable: bool):
        self.store = store
        self.durable = durable

    def __enter__(self) -> sqlite3.Connection:
        self.store._lock.acquire()
        db = self.store._db
        try:
            db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.store._lock.release()
            raise
        return db

    def __exit__(self, exc_type, exc, tb) -> None:
        db = self.store._db
        try:
            if exc_type is None:
                db.execute("COMMIT")
            else:
                db.execute("ROLLBACK")
        except BaseException:
            if db.in_transaction:          # a failed COMMIT (disk full...) leaves it open
                db.execute("ROLLBACK")
            raise
        finally:
            self.store._lock.release()


# ---- checks and conversions -------------------------------------------------------------------
def _check_owner(owner: str) -> None:
    # An empty owner would make every anonymous caller share one history.
    if not isinstance(owner, str) or not owner:
        raise ValueError("owner must be a non-empty string.")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}; expected one of {', '.join(ROLES)}.")


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"Unknown status {status!r}; expected one of {', '.join(STATUSES)}.")


def _check_content(content: str) -> None:
    if not isinstance(content, str):
        raise TypeError("Message content must be a string.")
    if len(content) > MAX_MESSAGE_CHARS:
        raise MessageTooLong(f"The message is {len(content):,} characters long; "
                             f"the limit is {MAX_MESSAGE_CHARS:,}.")


def _meta_json(meta: dict | None) -> str:
    text = json.dumps(meta or {}, ensure_ascii=False)
    if len(text) > MAX_META_CHARS:
        raise ValueError(f"Message meta is {len(text):,} characters as JSON; "
                         f"the limit is {MAX_META_CHARS:,}.")
    return text


def _message_id(message_id) -> int:
    try:
        return int(message_id)
    except (TypeError, ValueError):
        raise MessageNotFound("No such message in this chat.") from None


def _clean_title(title: str) -> str:
    title = " ".join(str(title or "").split())      # one line: titles are shown in a list
    return title[:MAX_TITLE_CHARS] or DEFAULT_TITLE


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _chat_fields(row: sqlite3.Row) -> dict:
    return {key: row[key] for key in ("id", "title", "mode", "character", "created_at", "updated_at")}


def _message(row: sqlite3.Row) -> Message:
    return Message(id=row["id"], role=row["role"], content=row["content"], status=row["status"],
                   meta=json.loads(row["meta"]), created_at=row["created_at"],
                   updated_at=row["updated_at"])
