"""Turns a stream of token bytes into text a user may see.

Two things must never reach the screen: half of a multi-byte character (a token can end
in the middle of an emoji or a CJK character) and the beginning of a stop string that
might still complete (the reply is cut before a stop string, so its first characters
are held back until it is clear whether it completes).
"""
from __future__ import annotations

import codecs


class ReplyText:
    def __init__(self, stop_strings: tuple[str, ...] | list[str] = ()):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = [s for s in stop_strings if s]
        self._longest_stop = max((len(s) for s in self._stops), default=0)
        self.text = ""              # everything decoded so far
        self._shown = 0             # how much of self.text was released
        self.stopped_by: str | None = None

    def add(self, piece: bytes) -> str:
        """Adds one token's bytes; returns the text that is now safe to show."""
        self.text += self._decoder.decode(piece)
        if self._stops:
            hit = self._find_stop()
            if hit is not None:
                return self._release(hit)
        return self._release(len(self.text) - self._held_back())

    def finish(self) -> str:
        """The end of the reply: releases whatever is still held back."""
        if self.stopped_by is None:
            self.text += self._decoder.decode(b"", final=True)
            return self._release(len(self.text))
        return ""

    @property
    def shown(self) -> str:
        return self.text[: self._shown]

    def _find_stop(self) -> int | None:
        # Only the tail can hold a new match: what was shown is known stop-free.
        start = max(0, self._shown - self._longest_stop)
        best = None
        for stop in self._stops:
            at = self.text.find(stop, start)
            if at != -1 and (best is None or at < best):
                best, self.stopped_by = at, stop
        return best

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a prefix of a stop string."""
        tail = self.text[max(self._shown, len(self.text) - self._longest_stop):]
        for size in range(len(tail), 0, -1):
            suffix = tail[-size:]
            if any(stop.startswith(suffix) for stop in self._stops):
                return size
        return 0

    def _release(self, upto: int) -> str:
        upto = max(upto, self._shown)
        new = self.text[self._shown:upto]
        self._shown = upto
        if self.stopped_by is not None:
            self.text = self.text[:upto]
        return new
