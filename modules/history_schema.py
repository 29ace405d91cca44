"""The chat history database's tables, and the steps that bring an older file up to date.

Version 1: chats and messages.
Version 2: chats get an integer key (`num`) that the title index can point at (a table
    without one may renumber its rowids on VACUUM); per-owner totals (`owner_usage`) so the
    storage limits cost one row read, not a scan; FTS5 indexes over titles and message text.
    Triggers keep the totals and both indexes in step with every insert, edit and delete, so
    no write path can forget them.
Version 3: chats remember the tools chosen for them (`tools`, a JSON list of tool file
    names) and whether a reply must begin with a call (`tool_choice`: auto or required).
Version 4: a chat's messages form a tree, so Regenerate and an edit keep what they replace:
    each message has a `parent_id` (NULL: a first message), versions of a message are
    siblings, and the path on screen follows `active_child` from the chat's `active_root`
    (NULL: the newest; 0: the path ends here; modules/chat_tree.py reads them). Every
    chat of version 3 becomes one branch. Files attached to a message (`attachments`) keep
    the text read from them; their characters count in the owner's totals like messages'.

`prepare(db)` runs at every open: it creates a new file, migrates an older one in a single
transaction (a crash midway leaves the old file as it was), and refuses a newer one.
"""
from __future__ import annotations

import sqlite3

VERSION = 4
# Word search with case and accents folded ("cafe" finds "Café"), for any script that
# separates words with spaces or punctuation.
TOKENIZER = "unicode61 remove_diacritics 2"

_CHATS = """
CREATE TABLE chats (
    num         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    owner       TEXT NOT NULL,
    title       TEXT NOT NULL,
    mode        TEXT NOT NULL,
    character   TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
)"""

_TABLES = (
    _CHATS,
    "CREATE INDEX chats_by_owner ON chats(owner, updated_at)",
    """CREATE TABLE messages (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        chat_id     TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
        role        TEXT NOT NULL,
        content     TEXT NOT NULL,
        status      TEXT NOT NULL,
        meta        TEXT NOT NULL,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    )""",
    "CREATE INDEX messages_by_chat ON messages(chat_id, id)",
    "CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming'",
)

# External-content indexes: the text is stored once, in chats and messages.
_SEARCH_AND_TOTALS = (
    f"""CREATE VIRTUAL TABLE title_search USING fts5(
        title, content='chats', content_rowid='num', tokenize='{TOKENIZER}')""",
    f"""CREATE VIRTUAL TABLE message_search USING fts5(
        content, content='messages', content_rowid='id', tokenize='{TOKENIZER}')""",
    """CREATE TABLE owner_usage (
        owner  TEXT PRIMARY KEY,
        chats  INTEGER NOT NULL DEFAULT 0,
        chars  INTEGER NOT NULL DEFAULT 0      -- characters of message text
    ) WITHOUT ROWID""",
    """CREATE TRIGGER chat_added AFTER INSERT ON chats BEGIN
        INSERT INTO owner_usage (owner, chats) VALUES (new.owner, 1)
            ON CONFLICT (owner) DO UPDATE SET chats = chats + 1;
        INSERT INTO title_search (rowid, title) VALUES (new.num, new.title);
    END""",
    # BEFORE: the cascade deletes the chat's messages after its row is gone, where their own
    # trigger can no longer find the owner, so the chat takes their characters off here.
    """CREATE TRIGGER chat_deleting BEFORE DELETE ON chats BEGIN
        UPDATE owner_usage SET chats = chats - 1,
            chars = chars - (SELECT coalesce(sum(length(content)), 0) FROM messages
                             WHERE chat_id = old.id)
            WHERE owner = old.owner;
        INSERT INTO title_search (title_search, rowid, title) VALUES ('delete', old.num, old.title);
    END""",
    """CREATE TRIGGER chat_renamed AFTER UPDATE OF title ON chats WHEN new.title IS NOT old.title BEGIN
        INSERT INTO title_search (title_search, rowid, title) VALUES ('delete', old.num, old.title);
        INSERT INTO title_search (rowid, title) VALUES (new.num, new.title);
    END""",
    """CREATE TRIGGER message_added AFTER INSERT ON messages BEGIN
        INSERT INTO message_search (rowid, content) VALUES (new.id, new.content);
        UPDATE owner_usage SET chars = chars + length(new.content)
            WHERE owner = (SELECT owner FROM chats WHERE id = new.chat_id);
    END""",
    """CREATE TRIGGER message_deleted AFTER DELETE ON messages BEGIN
        INSERT INTO message_search (message_search, rowid, content) VALUES ('delete', old.id, old.content);
        UPDATE owner_usage SET chars = chars - length(old.content)
            WHERE owner = (SELECT owner FROM chats WHERE id = old.chat_id);
    END""",
    """CREATE TRIGGER message_edited AFTER UPDATE OF content ON messages
        WHEN new.content IS NOT old.content BEGIN
        INSERT INTO message_search (message_search, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO message_search (rowid, content) VALUES (new.id, new.content);
        UPDATE owner_usage SET chars = chars + length(new.content) - length(old.content)
            WHERE owner = (SELECT owner FROM chats WHERE id = new.chat_id);
    END""",
)

# Version 1 -> 2: rebuild chats with an integer key (SQLite's 12-step table change; the
# caller turns foreign keys off around it), then build the totals and indexes from the rows.
_FROM_VERSION_1 = (
    _CHATS.replace("CREATE TABLE chats", "CREATE TABLE chats_v2"),
    "INSERT INTO chats_v2 SELECT rowid, id, owner, title, mode, character, created_at, updated_at"
    " FROM chats",
    "DROP TABLE chats",
    "ALTER TABLE chats_v2 RENAME TO chats",
    "CREATE INDEX chats_by_owner ON chats(owner, updated_at)",
    *_SEARCH_AND_TOTALS,
    """INSERT INTO owner_usage (owner, chats, chars)
        SELECT owner, count(*), coalesce(sum((SELECT coalesce(sum(length(content)), 0)
                                              FROM messages WHERE chat_id = chats.id)), 0)
        FROM chats GROUP BY owner""",
    "INSERT INTO title_search (title_search) VALUES ('rebuild')",
    "INSERT INTO message_search (message_search) VALUES ('rebuild')",
)

# Version 2 -> 3: added columns with defaults, so older rows read as "no tools".
_FROM_VERSION_2 = (
    "ALTER TABLE chats ADD COLUMN tools TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE chats ADD COLUMN tool_choice TEXT NOT NULL DEFAULT 'auto'",
)


# Version 3 -> 4: the message tree (each chat so far one branch: a message follows the one
# before it) and attachments. The chat's BEFORE DELETE trigger takes the attachments'
# characters off too, for the reason given at chat_deleting above.
_FROM_VERSION_3 = (
    "ALTER TABLE messages ADD COLUMN parent_id INTEGER",
    "ALTER TABLE messages ADD COLUMN active_child INTEGER",
    "ALTER TABLE chats ADD COLUMN active_root INTEGER",
    """UPDATE messages SET parent_id = (SELECT max(earlier.id) FROM messages earlier
                                         WHERE earlier.chat_id = messages.chat_id AND earlier.id < messages.id)""",
    "CREATE INDEX messages_by_parent ON messages(parent_id)",
    """CREATE TABLE attachments (
        id          INTEGER PRIMARY KEY,
        message_id  INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        chat_id     TEXT NOT NULL,          -- the message's, for the totals once it is gone
        name        TEXT NOT NULL,
        kind        TEXT NOT NULL,          -- text, markdown, code or pdf
        size        INTEGER NOT NULL,       -- bytes of the file as it came
        text        TEXT NOT NULL           -- what the prompt gets
    )""",
    "CREATE INDEX attachments_by_message ON attachments(message_id)",
    "CREATE INDEX attachments_by_chat ON attachments(chat_id)",
    """CREATE TRIGGER attachment_added AFTER INSERT ON attachments BEGIN
        UPDATE owner_usage SET chars = chars + length(new.text)
            WHERE owner = (SELECT owner FROM chats WHERE id = new.chat_id);
    END""",
    """CREATE TRIGGER attachment_deleted AFTER DELETE ON attachments BEGIN
        UPDATE owner_usage SET chars = chars - length(old.text)
            WHERE owner = (SELECT owner FROM chats WHERE id = old.chat_id);
    END""",
    "DROP TRIGGER chat_deleting",
    """CREATE TRIGGER chat_deleting BEFORE DELETE ON chats BEGIN
        UPDATE owner_usage SET chats = chats - 1,
            chars = chars - (SELECT coalesce(sum(length(content)), 0) FROM messages WHERE chat_id = old.id)
                          - (SELECT coalesce(sum(length(text)), 0) FROM attachments WHERE chat_id = old.id)
            WHERE owner = old.owner;
        INSERT INTO title_search (title_search, rowid, title) VALUES ('delete', old.num, old.title);
    END""",
)
# The steps from each version to the next; a new file is made as version 2, then stepped on.
_STEPS = {1: _FROM_VERSION_1, 2: _FROM_VERSION_2, 3: _FROM_VERSION_3}


class NewerDatabase(RuntimeError):
    """The file was written by a newer version of this program."""


def prepare(db: sqlite3.Connection) -> None:
    """Brings the database to VERSION. `db` must be in autocommit mode (isolation_level=None)."""
    db.execute("PRAGMA foreign_keys=OFF")      # a no-op inside a transaction, hence here
    try:
        db.execute("BEGIN IMMEDIATE")          # one process migrates; another waits, then sees it done
        try:
            _upgrade(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.execute("PRAGMA foreign_keys=ON")


def _upgrade(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > VERSION:
        raise NewerDatabase(f"The chat history was written by a newer version (format {version}; "
                            f"this one reads up to {VERSION}). Update the program to open it.")
    if version == VERSION:
        return
    if version == 0:
        for statement in (*_TABLES, *_SEARCH_AND_TOTALS):
            db.execute(statement)
        version = 2
    for step in range(version, VERSION):
        for statement in _STEPS[step]:
            db.execute(statement)
    problems = db.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise sqlite3.IntegrityError(f"Chat history migration left {len(problems)} broken references.")
    db.execute(f"PRAGMA user_version = {VERSION}")

