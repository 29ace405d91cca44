"""Chat search: the words typed in the chat list's search box, as SQL over the FTS5 indexes
that modules/history_schema.py keeps (title_search, message_search).

Apart from the store because this is the one place where free text becomes a query: every
word is quoted, so nothing a person types is read as FTS5 syntax or can raise.
"""
from __future__ import annotations

import re

MAX_SEARCH_WORDS = 8               # more words in a search box are ignored

_SEARCH_WORD = re.compile(r'"([^"]+)"|(\S+)')

# A word may be in the title or in any message: chats, not messages, match.
_CHAT_HAS_WORD = (" AND (num IN (SELECT rowid FROM title_search WHERE title_search MATCH ?)"
                  " OR id IN (SELECT chat_id FROM messages WHERE id IN"
                  " (SELECT rowid FROM message_search WHERE message_search MATCH ?)))")


def fts_words(query: str) -> list[str]:
    """The words of a search box as FTS5 prefix phrases: `engine "oil filter"` becomes
    `"engine"*` and `"oil filter"*`. Everything a person types is quoted, so FTS syntax
    (AND, NEAR, *, -, column:, quotes) is searched for as text and never raises; words
    with no letter or digit (a lone "-") are dropped, as the index has no such words."""
    words = [phrase or word for phrase, word in _SEARCH_WORD.findall(query)]
    words = [word for word in words if any(char.isalnum() for char in word)]
    return ['"' + word.replace('"', '""') + '"*' for word in words[:MAX_SEARCH_WORDS]]


def chat_search_conditions(query: str) -> tuple[str, list[str]] | None:
    """Conditions to add to a `SELECT ... FROM chats WHERE ...` (each begins with AND) so
    only chats with every word of `query` in their title or messages remain, and their
    arguments. None when the query has no word (only punctuation): nothing can match."""
    words = fts_words(query)
    if not words:
        return None
    return _CHAT_HAS_WORD * len(words), [arg for word in words for arg in (word, word)]
