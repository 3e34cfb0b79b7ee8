"""
Step 3 of the data path: application bytes -> decoded, edited lines.  Pure.

The telnet layer below has removed telnet commands and turned every line end
(LF, CR LF, CR NUL) into one LF.  Here the bytes of each line are counted
against the line limit, decoded in the connection's charset, and edited: BS
and DEL erase the last character (a whole character, also a two-byte GBK
one), for every client.  For a client in character mode that asked the server
to echo (Windows telnet, PuTTY), the editor also says what to echo back.

`LineEditor.feed` returns what happened, in order, as a list of items:

    Echo(text)      show this to the user who is typing (echo mode only)
    Line(text)      a complete line, decoded, not yet cleaned
    LineTooLong()   a line went over the limit; it is dropped up to its end
    Undecodable()   some input bytes were not valid in the charset
"""

from __future__ import annotations

import codecs
import unicodedata

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

    def __init__(self, max_line_bytes: int, charset: str) -> None:
        self.max_line_bytes = max_line_bytes
        self.echo = False
        self.partial = ""  # what has been typed of the current line
        self._line_bytes = 0  # bytes received for the current line
        self._discarding = False  # the current line went over the limit
        self.set_charset(charset)

    def set_charset(self, charset: str) -> None:
        """Decode what comes next in `charset` (a name from text.lookup_charset)."""
        self.charset = charset
        self._decoder = codecs.getincrementaldecoder(charset)("strict")

    def feed(self, data: bytes) -> list[Item]:
        items: list[Item] = []
        echo: list[str] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            self._take(data[start:] if end < 0 else data[start:end], items, echo)
            if end < 0:
                break
            self._end_line(items, echo)
            start = end + 1
        if echo:
            items.append(Echo("".join(echo)))
        return items

    # -- inside a line

    def _take(self, chunk: bytes, items: list[Item], echo: list[str]) -> None:
        if not chunk or self._discarding:
            return
        self._line_bytes += len(chunk)
        if self._line_bytes > self.max_line_bytes:
            # Drop what we hold now, so an endless line never grows memory.
            self._discarding = True
            self.partial = ""
            self._decoder.reset()
            _flush_echo(items, echo)
            items.append(LineTooLong())
            return
        text = self._decode(chunk, items, final=False)
        if not self.echo and "\b" not in text and "\x7f" not in text:
            self.partial += text  # the common case: a whole line from nc or linemode telnet
            return
        for char in text:
            if char in ERASE:
                if self.partial:
                    erased = self.partial[-1]
                    self.partial = self.partial[:-1]
                    if self.echo and unicodedata.category(erased) != "Cc":
                        echo.append("\b \b" * display_width(erased))
            else:
                self.partial += char
                if self.echo and unicodedata.category(char) != "Cc":
                    echo.append(char)

    def _end_line(self, items: list[Item], echo: list[str]) -> None:
        if self.echo:
            echo.append("\r\n")
        if self._discarding:
            self._discarding = False
            _flush_echo(items, echo)
        else:
            line = self.partial + self._decode(b"", items, final=True)
            _flush_echo(items, echo)
            items.append(Line(line))
        self.partial = ""
        self._line_bytes = 0
        self._decoder.reset()

    def _decode(self, data: bytes, items: list[Item], final: bool) -> str:
        """Decode strictly; on bad bytes, decode again with U+FFFD and say so."""
        state = self._decoder.getstate()
        try:
            return self._decoder.decode(data, final)
        except UnicodeDecodeError:
            self._decoder.setstate(state)
            self._decoder.errors = "replace"
            try:
                text = self._decoder.decode(data, final)
            finally:
                self._decoder.errors = "strict"
            items.append(Undecodable())
            return text


def _flush_echo(items: list[Item], echo: list[str]) -> None:
    if echo:
        items.append(Echo("".join(echo)))
        echo.clear()
