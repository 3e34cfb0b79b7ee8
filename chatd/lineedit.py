"""
Step 3 of the data path: application bytes -> decoded, edited lines.  Pure.

The telnet layer below has removed telnet commands and turned every line end
(LF, CR LF, CR NUL) into one LF.  Here the bytes of each line are counted
against the line limit, decoded in the connection's charset, and edited: BS
and DEL erase the last character (a whole character, also a two-byte GBK
one), for every client.  For a client in character mode that asked the server
to echo (Windows telnet, PuTTY), the editor also says what to echo back.

`LineEditor.feed` yields what happened, in order:

    Echo(text)      show this to the user who is typing (echo mode only)
    Line(text)      a complete line, decoded, not yet cleaned
    LineTooLong()   a line went over the limit; it is dropped up to its end
    Undecodable()   some input bytes were not valid in the charset
"""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Iterator

from attrs import frozen

from chatd.text import display_width

ERASE = ("\b", "\x7f")


@frozen
class Echo:
    text: str


@frozen
class Line:
    text: str


@frozen
class LineTooLong:
    pass


@frozen
class Undecodable:
    pass


Item = Echo | Line | LineTooLong | Undecodable


class LineEditor:
    """The line a user is typing, and the rules for ending it."""

    __slots__ = ("max_line_bytes", "echo", "_pieces", "_line_bytes", "_discarding", "charset", "_decoder")

    def __init__(self, max_line_bytes: int, charset: str) -> None:
        self.max_line_bytes = max_line_bytes
        self.echo = False
        # What has been typed of the current line, in pieces: appending to a
        # list keeps a line that arrives a byte at a time linear in its length.
        self._pieces: list[str] = []
        self._line_bytes = 0  # bytes received for the current line
        self._discarding = False  # the current line went over the limit
        self.set_charset(charset)

    @property
    def partial(self) -> str:
        """What has been typed of the current line."""
        return "".join(self._pieces)

    def set_charset(self, charset: str) -> None:
        """Decode what comes next in `charset` (a name from text.lookup_charset)."""
        self.charset = charset
        self._decoder = codecs.getincrementaldecoder(charset)("strict")

    def feed(self, data: bytes) -> Iterator[Item]:
        """
        What `data` makes happen, item by item.  A generator, so that the
        caller acts on each line (a /charset, say) before the editor decodes
        the bytes that follow it.
        """
        start = 0
        while True:
            end = data.find(b"\n", start)
            yield from self._take(data[start:] if end < 0 else data[start:end])
            if end < 0:
                return
            yield from self._end_line()
            start = end + 1

    # -- inside a line

    def _take(self, chunk: bytes) -> Iterator[Item]:
        if not chunk or self._discarding:
            return
        self._line_bytes += len(chunk)
        if self._line_bytes > self.max_line_bytes:
            # Drop what we hold now, so an endless line never grows memory.
            self._discarding = True
            self._pieces.clear()
            self._decoder.reset()
            yield LineTooLong()
            return
        text, undecodable = self._decode(chunk, final=False)
        if undecodable:
            yield Undecodable()
        if not self.echo and "\b" not in text and "\x7f" not in text:
            self._pieces.append(text)  # the common case: a whole line from nc or linemode telnet
            return
        echo = []
        for char in text:
            if char in ERASE:
                erased = self._erase_last_character()
                if erased and self.echo and unicodedata.category(erased) != "Cc":
                    echo.append("\b \b" * display_width(erased))
            else:
                self._pieces.append(char)
                if self.echo and unicodedata.category(char) != "Cc":
                    echo.append(char)
        if echo:
            yield Echo("".join(echo))

    def _end_line(self) -> Iterator[Item]:
        line, undecodable = self._decode(b"", final=True)
        line = self.partial + line
        discarded = self._discarding
        self._pieces.clear()
        self._line_bytes = 0
        self._discarding = False
        self._decoder.reset()
        if self.echo:
            yield Echo("\r\n")
        if undecodable and not discarded:
            yield Undecodable()
        if not discarded:
            yield Line(line)

    def _erase_last_character(self) -> str:
        """Remove the last character typed and return it ("" if there is none)."""
        pieces = self._pieces
        while pieces and not pieces[-1]:
            pieces.pop()
        if not pieces:
            return ""
        last = pieces[-1]
        pieces[-1] = last[:-1]
        return last[-1]

    def _decode(self, data: bytes, final: bool) -> tuple[str, bool]:
        """Decode strictly; on bad bytes, decode again with U+FFFD.  Returns (text, had bad bytes)."""
        state = self._decoder.getstate()
        try:
            return self._decoder.decode(data, final), False
        except UnicodeDecodeError:
            self._decoder.setstate(state)
            self._decoder.errors = "replace"
            try:
                return self._decoder.decode(data, final), True
            finally:
                self._decoder.errors = "strict"
