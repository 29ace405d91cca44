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

Versions: messages form a tree (modules/chat_tree.py). Regenerate and an edit add a sibling
instead of replacing, and get_chat's `messages` is the path on screen (what the prompt is
built from); `tree` has every version. append_message adds at the end of that path unless
given a parent; show_message and end_path_at change which path is on screen.

Limits: each owner may keep Limits.max_chats_per_user chats holding at most
Limits.max_stored_chars_per_user characters of message text. Going over raises a
StorageLimitReached (a LimitExceeded, so the UI shows its message as is) and stores nothing;
a reply being written can instead be cut where the limit falls (update_message(cut_to_fit=True)).

Concurrency: writes go through one connection, one at a time (SQLite allows one writer
anyway). Reads (list, search, get) each take a connection of their own from a small pool
and, in WAL mode, read a snapshot without waiting for writers or making them wait, so one
person's long search never holds up another person's reply being saved.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from modules import chat_tree, history_schema
from modules.attachments import Attachment
from modules.history_search import chat_search_conditions
from modules.limits import Limits
from modules.request_limits import LimitExceeded

DEFAULT_FOLDER = Path(__file__).resolve().parent.parent / "data"
DB_FILENAME = "history.sqlite3"

# A guard against filling the disk, not a limit on what a person types (that is
# modules.request_limits.MAX_INPUT_CHARS). It is larger because model replies with long
# contexts can legitimately run to several hundred thousand characters.
MAX_MESSAGE_CHARS = 500_000
MAX_META_CHARS = 20_000            # meta is small bookkeeping (model, seed, token counts)
MAX_TITLE_CHARS = 200              # longer titles are cut: a title is only a label
DEFAULT_TITLE = "New chat"

# tool: a tool's result, answering a call in the assistant message before it (meta tool_calls)
ROLES = ("system", "user", "assistant", "tool")
# streaming: being generated now; stopped: the user pressed Stop (partial text kept);
# interrupted: the server died while it was streaming (partial text kept); error: generation failed.
STATUSES = ("done", "streaming", "stopped", "interrupted", "error")
MODES = ("chat", "chat-instruct", "instruct")
TOOL_CHOICES = ("auto", "required")    # required: each reply begins with a tool call
MAX_CHAT_TOOLS = 64

log = logging.getLogger(__name__)
# SQLite's codes for "this file is not a database" and "the database is damaged": the file
# is set aside at start-up and a new one started (any other error, a lock say, is raised).
DAMAGE_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)

AT_PATH_END = object()             # append_message's default parent: the last message on screen

MAX_IDLE_READERS = 8               # read connections kept open between reads


class ChatNotFound(LookupError):
    """No such chat for this owner (it may not exist, or may belong to someone else)."""


class MessageNotFound(LookupError):
    """No such message in this chat."""


class MessageTooLong(ValueError):
    pass


class StorageLimitReached(LimitExceeded):
    """The owner's stored chats are at one of their limits; nothing was stored."""


class TooManyChats(StorageLimitReached):
    pass


class StorageFull(StorageLimitReached):
    pass


class DiskFull(StorageLimitReached):
    """The server's disk (not the owner's share) has no room left; nothing was stored and
    what was stored before is intact (the transaction was rolled back)."""


@dataclass(frozen=True)
class StorageUsage:
    chats: int
    chars: int          # characters of message text


@dataclass
class Message:
    id: int
    role: str
    content: str
    status: str
    meta: dict
    created_at: float
    updated_at: float
    parent_id: int | None = None       # the message before it (None: a first message)
    active_child: int | None = None    # which next message is on screen (chat_tree.py)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class ChatSummary:
    id: str
    title: str
    mode: str
    character: str
    created_at: float
    updated_at: float
    tools: list[str] = field(default_factory=list)     # tool file names (modules/chat_tools.py)
    tool_choice: str = "auto"


@dataclass
class Chat(ChatSummary):
    messages: list[Message] = field(default_factory=list)     # the path on screen
    tree: list[Message] = field(default_factory=list)         # every version, oldest first

    def versions(self, message_id: int) -> chat_tree.Versions:
        return chat_tree.versions(self.tree, message_id)


class HistoryStore:
    def __init__(self, folder: str | os.PathLike | None = None, limits: Limits | None = None):
        self.folder = Path(folder) if folder is not None else DEFAULT_FOLDER
        self.limits = limits or Limits()
        # Chats are private: keep the folder readable by the server's user only.
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.folder / DB_FILENAME
        self._write_lock = threading.RLock()   # re-entrant: update_message reads, then writes
        # A damaged file (a crash on a disk that lies about fsync, a copy cut short) must not
        # keep the server from starting: it is moved aside, kept for recovery, and the
        # server starts with an empty history. recovery_notice says so, for the log and page.
        self.recovered_from: Path | None = None
        self.recovery_notice = ""
        try:
            self._writer = self._open_writer()
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise
            self._set_aside(exc)
            self._writer = self._open_writer()
        # Idle read connections. A pool rather than one per thread: Gradio's worker threads
        # come and go, and a per-thread connection would outlive its thread until collected.
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    def _open_writer(self) -> sqlite3.Connection:
        writer = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            os.chmod(self.path, 0o600)        # SQLite gives the -wal and -shm files the same mode
        except OSError:
            pass                              # not ours to change (another user made it)
        try:
            self._configure(writer)
            writer.execute("PRAGMA journal_mode=WAL")    # readers and the writer don't wait
            problems = [row[0] for row in writer.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                raise _Damaged("; ".join(problems))
            history_schema.prepare(writer)               # creates or migrates the tables
        except BaseException:
            writer.close()
            raise
        return writer

    def _set_aside(self, error: sqlite3.DatabaseError) -> None:
        """Moves the damaged database (and its WAL and shared-memory files) to
        history.sqlite3.damaged-<time> beside it, and says so on the log."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        number = 1
        while aside.exists():
            number += 1
            aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{number}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                os.replace(source, f"{aside}{suffix}")
        self.recovered_from = aside
        self.recovery_notice = (
            f"The chat history database {self.path} was damaged ({error}). It was moved to "
            f"{aside} and an empty history was started; earlier chats may be recovered from "
            f"the moved file with: sqlite3 {aside} .recover")
        log.error("%s", self.recovery_notice)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            return self._configure(db)
        except BaseException:
            db.close()
            raise

    @staticmethod
    def _configure(db: sqlite3.Connection) -> sqlite3.Connection:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=5000")    # another process on the same file
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def close(self) -> None:
        with self._write_lock, self._readers_lock:
            self._closed = True
            for db in self._readers:
                db.close()
            self._readers.clear()
            self._writer.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- limits ----------------------------------------------------------------------------
    def usage(self, owner: str) -> StorageUsage:
        """How many chats and characters the owner has stored (kept up to date by triggers)."""
        _check_owner(owner)
        with self._read() as db:
            return _usage(db, owner)

    def check_room(self, owner: str, chars: int) -> None:
        """Raises StorageFull now if `chars` more characters would not fit, so a caller can
        refuse before it starts something (a new chat) that the message would not fit in."""
        _check_owner(owner)
        with self._read() as db:
            used = _usage(db, owner).chars
        if chars > 0 and used + chars > self.limits.max_stored_chars_per_user:
            raise _storage_full(used, chars, self.limits.max_stored_chars_per_user)

    # ---- chats ----------------------------------------------------------------------------
    def create_chat(self, owner: str, title: str = DEFAULT_TITLE, mode: str = "chat",
                    character: str = "") -> str:
        _check_owner(owner)
        if mode not in MODES:
            raise ValueError(f"Unknown chat mode {mode!r}; expected one of {', '.join(MODES)}.")
        chat_id = secrets.token_urlsafe(16)          # unguessable: ids may appear in URLs and logs
        now = time.time()
        with self._write(durable=True) as db:
            chats = _usage(db, owner).chats
            if chats >= self.limits.max_chats_per_user:
                raise _too_many_chats(chats, self.limits.max_chats_per_user)
            db.execute("INSERT INTO chats (id, owner, title, mode, character, created_at, updated_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (chat_id, owner, _clean_title(title), mode, character, now, now))
        return chat_id

    def list_chats(self, owner: str, query: str = "", limit: int = 500) -> list[ChatSummary]:
        """The owner's chats, most recently active first. With a `query`, only chats that
        have every word of it (as a word or the start of one; "quoted words" as a phrase) in
        their title or messages, ignoring case and accents."""
        _check_owner(owner)
        sql = "SELECT * FROM chats WHERE owner = ?"
        args: list = [owner]
        if query.strip():
            search = chat_search_conditions(query)
            if search is None:
                return []                     # only punctuation: nothing can match
            sql += search[0]
            args += search[1]
        sql += " ORDER BY updated_at DESC, num DESC LIMIT ?"
        args.append(limit)
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return [ChatSummary(**_chat_fields(row)) for row in rows]

    def get_chat(self, owner: str, chat_id: str) -> Chat:
        _check_owner(owner)
        with self._read() as db:
            row = _owned_chat(db, owner, chat_id)
            messages = db.execute(
                "SELECT * FROM messages WHERE chat_id = ? ORDER BY id", (chat_id,)).fetchall()
            files = db.execute("SELECT * FROM attachments WHERE chat_id = ? ORDER BY id", (chat_id,)).fetchall()
        tree = [_message(m) for m in messages]
        by_id = {m.id: m for m in tree}
        for file in files:
            if file["message_id"] in by_id:
                by_id[file["message_id"]].attachments.append(
                    Attachment(file["name"], file["kind"], file["size"], file["text"]))
        path = [by_id[i] for i in chat_tree.path_ids(tree, row["active_root"])]
        return Chat(**_chat_fields(row), messages=path, tree=tree)

    def rename_chat(self, owner: str, chat_id: str, title: str) -> None:
        _check_owner(owner)
        with self._write(durable=True) as db:
            _owned_chat(db, owner, chat_id)
            db.execute("UPDATE chats SET title = ? WHERE id = ?", (_clean_title(title), chat_id))

    def set_chat_settings(self, owner: str, chat_id: str, *, mode: str | None = None,
                          character: str | None = None, tools: list[str] | None = None,
                          tool_choice: str | None = None) -> None:
        """Records the mode, character and tools a chat is used with, so reopening it brings
        them back. Not activity: the chat keeps its place in the list."""
        _check_owner(owner)
        if mode is not None and mode not in MODES:
            raise ValueError(f"Unknown chat mode {mode!r}; expected one of {', '.join(MODES)}.")
        if tool_choice is not None and tool_choice not in TOOL_CHOICES:
            raise ValueError(f"Unknown tool choice {tool_choice!r}; expected one of {', '.join(TOOL_CHOICES)}.")
        tools_json = None if tools is None else _tools_json(tools)
        with self._write(durable=True) as db:
            row = _owned_chat(db, owner, chat_id)
            db.execute("UPDATE chats SET mode = ?, character = ?, tools = ?, tool_choice = ? WHERE id = ?",
                       (row["mode"] if mode is None else mode,
                        row["character"] if character is None else character,
                        row["tools"] if tools_json is None else tools_json,
                        row["tool_choice"] if tool_choice is None else tool_choice, chat_id))

    def check_new_chat(self, owner: str) -> None:
        """Raises TooManyChats now if the owner has no room for another chat, so a caller can
        refuse before it takes anything from the person (the message they typed)."""
        _check_owner(owner)
        with self._read() as db:
            chats = _usage(db, owner).chats
        if chats >= self.limits.max_chats_per_user:
            raise _too_many_chats(chats, self.limits.max_chats_per_user)

    def delete_chat(self, owner: str, chat_id: str) -> None:
        _check_owner(owner)
        with self._write(durable=True) as db:
            _owned_chat(db, owner, chat_id)
            db.execute("DELETE FROM chats WHERE id = ?", (chat_id,))   # messages go by cascade

    # ---- messages -------------------------------------------------------------------------
    def append_message(self, owner: str, chat_id: str, role: str, content: str,
                       status: str = "done", meta: dict | None = None, *, parent=AT_PATH_END,
                       attachments: list[Attachment] = ()) -> int:
        """Adds a message after `parent` (by default the last message on screen; None: as a
        first message) and puts it on screen. A parent that already has a next message
        gets another version of it. Attachments count in the owner's characters."""
        _check_owner(owner)
        _check_role(role)
        _check_status(status)
        content = _clean_content(content)
        meta_json = _meta_json(meta)
        files = [_clean_attachment(a) for a in attachments]
        size = len(content) + sum(len(a.text) for a in files)
        now = time.time()
        with self._write(durable=status != "streaming") as db:
            _owned_chat(db, owner, chat_id)
            used = _usage(db, owner).chars
            if size and used + size > self.limits.max_stored_chars_per_user:
                raise _storage_full(used, size, self.limits.max_stored_chars_per_user)
            if parent is AT_PATH_END:
                path = chat_tree.stored_path(db, chat_id)
                parent = path[-1] if path else None
            elif parent is not None:
                _owned_message(db, owner, chat_id, parent)
            cursor = db.execute(
                "INSERT INTO messages (chat_id, role, content, status, meta, created_at, updated_at, parent_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (chat_id, role, content, status, meta_json, now, now, parent))
            message_id = cursor.lastrowid
            chat_tree.point_to(db, chat_id, parent, message_id)
            db.executemany("INSERT INTO attachments (message_id, chat_id, name, kind, size, text)"
                           " VALUES (?, ?, ?, ?, ?, ?)",
                           [(message_id, chat_id, a.name, a.kind, a.size, a.text) for a in files])
            db.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (now, chat_id))
            return message_id

    def update_message(self, owner: str, chat_id: str, message_id: int, content: str | None = None,
                       status: str | None = None, meta: dict | None = None,
                       cut_to_fit: bool = False) -> int:
        """Changes what is given. While streaming, call it with the reply so far; finish with
        status="done" (or "stopped" / "error"). Content that grows past the owner's storage
        limit raises StorageFull, or with cut_to_fit=True is stored only as far as it fits
        (for a reply being written: keep it rather than lose it). Returns the length of the
        content now stored."""
        _check_owner(owner)
        changes: dict = {}
        if content is not None:
            changes["content"] = content = _clean_content(content)
        if status is not None:
            _check_status(status)
            changes["status"] = status
        if meta is not None:
            changes["meta"] = _meta_json(meta)
        now = time.time()
        changes["updated_at"] = now
        with self._write_lock:
            current_status, _ = _owned_message(self._writer, owner, chat_id, message_id)
            # The synchronous level can't change inside a transaction, hence the read first.
            still_streaming = (status or current_status) == "streaming"
            with self._write(durable=not still_streaming) as db:
                _, stored = _owned_message(db, owner, chat_id, message_id)
                if content is not None and len(content) > stored:
                    changes["content"] = content = self._fit(db, owner, content, stored, cut_to_fit)
                assignments = ", ".join(f"{column} = ?" for column in changes)
                db.execute(f"UPDATE messages SET {assignments} WHERE id = ?",
                           (*changes.values(), message_id))
                db.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (now, chat_id))
        return stored if content is None else len(content)

    def delete_message(self, owner: str, chat_id: str, message_id: int) -> None:
        """Deletes the message with everything that follows it, in every branch. The path
        on screen then goes on with the newest version left in its place, if any."""
        _check_owner(owner)
        with self._write(durable=True) as db:
            _owned_message(db, owner, chat_id, message_id)
            chat_tree.delete_subtree(db, chat_id, _message_id(message_id))

    def truncate_after(self, owner: str, chat_id: str, message_id: int) -> int:
        """Deletes every message after `message_id` (which stays), in every branch; returns
        how many went."""
        _check_owner(owner)
        with self._write(durable=True) as db:
            _owned_message(db, owner, chat_id, message_id)
            return chat_tree.delete_subtree(db, chat_id, _message_id(message_id), keep_top=True)

    def show_message(self, owner: str, chat_id: str, message_id: int) -> None:
        """Puts this version (and the branch it is on) on screen. Not activity: the chat
        keeps its place in the list."""
        _check_owner(owner)
        with self._write(durable=True) as db:
            _owned_message(db, owner, chat_id, message_id)
            chat_tree.show(db, chat_id, _message_id(message_id))

    def end_path_at(self, owner: str, chat_id: str, message_id: int | None) -> None:
        """The path on screen stops after this message (None: the chat shows nothing), until
        a message is added there or another version chosen; nothing is deleted."""
        _check_owner(owner)
        with self._write(durable=True) as db:
            if message_id is None:
                _owned_chat(db, owner, chat_id)
            else:
                _owned_message(db, owner, chat_id, message_id)
            chat_tree.point_to(db, chat_id, None if message_id is None else _message_id(message_id),
                               chat_tree.END)

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
    def _fit(self, db: sqlite3.Connection, owner: str, content: str, stored: int, cut_to_fit: bool) -> str:
        """`content` replacing `stored` characters, if the owner has room for it; else cut to
        the room there is, or StorageFull."""
        used, limit = _usage(db, owner).chars, self.limits.max_stored_chars_per_user
        growth = len(content) - stored
        if used + growth <= limit:
            return content
        if not cut_to_fit:
            raise _storage_full(used, growth, limit)
        return content[:stored + max(0, limit - used)]

    def _write(self, durable: bool) -> _WriteTransaction:
        return _WriteTransaction(self, durable)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A connection of this thread's own for one read transaction: its queries see one
        snapshot, and neither wait for the writer nor hold it up."""
        with self._readers_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("The history store is closed.")
            db = self._readers.pop() if self._readers else None
        if db is None:
            db = self._connect()
            db.execute("PRAGMA query_only=ON")
        try:
            db.execute("BEGIN")
            yield db
        finally:
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")        # read-only: nothing to keep
            except sqlite3.Error:
                db.close()
                raise
            with self._readers_lock:
                if self._closed or len(self._readers) >= MAX_IDLE_READERS:
                    db.close()
                else:
                    self._readers.append(db)


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
        self.store._write_lock.acquire()
        db = self.store._writer
        try:
            db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.store._write_lock.release()
            raise
        return db

    def __exit__(self, exc_type, exc, tb) -> None:
        db = self.store._writer
        try:
            if exc_type is None:
                db.execute("COMMIT")
            else:
                db.execute("ROLLBACK")
        except BaseException as failure:
            if db.in_transaction:          # a failed COMMIT (disk full...) leaves it open
                db.execute("ROLLBACK")
            if _is_disk_full(failure):
                raise _disk_full(self.store) from failure
            raise
        finally:
            self.store._write_lock.release()
        if exc is not None and _is_disk_full(exc):
            raise _disk_full(self.store) from exc


class _Damaged(sqlite3.DatabaseError):
    """PRAGMA quick_check found the database damaged."""


def _is_disk_full(error: BaseException) -> bool:
    return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def _disk_full(store: HistoryStore) -> DiskFull:
    log.error("The disk holding %s is full: a chat change was not saved.", store.path)
    return DiskFull("The server's disk is full, so this was not saved (what was saved before "
                    "is kept). Tell the server's administrator.")


def _is_damage(error: sqlite3.DatabaseError) -> bool:
    return isinstance(error, _Damaged) or getattr(error, "sqlite_errorcode", None) in DAMAGE_CODES


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


def _clean_content(content: str) -> str:
    if not isinstance(content, str):
        raise TypeError("Message content must be a string.")
    if len(content) > MAX_MESSAGE_CHARS:
        raise MessageTooLong(f"The message is {len(content):,} characters long; "
                             f"the limit is {MAX_MESSAGE_CHARS:,}.")
    # SQLite's length() stops at a NUL, so the storage totals would not see the rest; the
    # replacement character keeps the length and shows that something was there.
    return content.replace("\x00", "\ufffd")


def _meta_json(meta: dict | None) -> str:
    text = json.dumps(meta or {}, ensure_ascii=False)
    if len(text) > MAX_META_CHARS:
        raise ValueError(f"Message meta is {len(text):,} characters as JSON; "
                         f"the limit is {MAX_META_CHARS:,}.")
    return text


def _tools_json(tools: list[str]) -> str:
    if not isinstance(tools, (list, tuple)) or not all(isinstance(t, str) and 0 < len(t) <= 100 for t in tools):
        raise ValueError("tools must be a list of tool file names.")
    if len(tools) > MAX_CHAT_TOOLS:
        raise ValueError(f"{len(tools)} tools: a chat may have at most {MAX_CHAT_TOOLS}.")
    return json.dumps(list(dict.fromkeys(tools)), ensure_ascii=False)


def _message_id(message_id) -> int:
    try:
        return int(message_id)
    except (TypeError, ValueError):
        raise MessageNotFound("No such message in this chat.") from None


def _clean_title(title: str) -> str:
    title = " ".join(str(title or "").split())      # one line: titles are shown in a list
    return title[:MAX_TITLE_CHARS] or DEFAULT_TITLE


def _owned_chat(db: sqlite3.Connection, owner: str, chat_id: str) -> sqlite3.Row:
    """The chat row, if this owner has it; the same error whether it is missing or another's."""
    row = db.execute("SELECT * FROM chats WHERE id = ? AND owner = ?", (str(chat_id), owner)).fetchone()
    if row is None:
        raise ChatNotFound("No such chat.")
    return row


def _owned_message(db: sqlite3.Connection, owner: str, chat_id: str, message_id: int) -> tuple[str, int]:
    """The message's status and content length, if it is in this owner's chat."""
    _owned_chat(db, owner, chat_id)
    row = db.execute("SELECT status, length(content) FROM messages WHERE id = ? AND chat_id = ?",
                     (_message_id(message_id), chat_id)).fetchone()
    if row is None:
        raise MessageNotFound("No such message in this chat.")
    return row[0], row[1]


def _usage(db: sqlite3.Connection, owner: str) -> StorageUsage:
    row = db.execute("SELECT chats, chars FROM owner_usage WHERE owner = ?", (owner,)).fetchone()
    return StorageUsage(row[0], row[1]) if row else StorageUsage(0, 0)


def _too_many_chats(chats: int, limit: int) -> TooManyChats:
    where = "the limit" if chats == limit else f"over the limit of {limit:,}"
    return TooManyChats(f"You have {chats:,} stored chats, {where}: "
                        "delete some in the chat list to make room.")


def _storage_full(used: int, more: int, limit: int) -> StorageFull:
    if used >= limit:
        where = "the limit" if used == limit else f"over the limit of {limit:,}"
        return StorageFull(f"You have {used:,} stored characters, {where}: "
                           "delete some chats in the chat list to make room.")
    return StorageFull(f"You have {used:,} stored characters and this needs {more:,} more, over the "
                       f"limit of {limit:,}: delete some chats in the chat list to make room.")


def _chat_fields(row: sqlite3.Row) -> dict:
    fields = {key: row[key] for key in ("id", "title", "mode", "character", "created_at", "updated_at",
                                        "tool_choice")}
    return dict(fields, tools=json.loads(row["tools"]))


def _message(row: sqlite3.Row) -> Message:
    return Message(id=row["id"], role=row["role"], content=row["content"], status=row["status"],
                   meta=json.loads(row["meta"]), created_at=row["created_at"],
                   updated_at=row["updated_at"], parent_id=row["parent_id"],
                   active_child=row["active_child"])


def _clean_attachment(attachment: Attachment) -> Attachment:
    if not isinstance(attachment, Attachment):
        raise TypeError("attachments must be modules.attachments.Attachment values.")
    return Attachment(attachment.name, attachment.kind, int(attachment.size), _clean_content(attachment.text))
