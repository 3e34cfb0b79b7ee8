"""
Step 3 of the data path: application bytes -> decoded, edited lines.  Pure.

The telnet layer below has removed telnet commands and turned every line end
(LF, CR LF, CR NUL) into one LF.  Here the bytes of each line are counted
against the line limit, decoded in the connection's charset, and edited, for
every client: BS and DEL erase the last character (a whole character, also
a two-byte GBK one), Ctrl-U the whole line, Ctrl-W the word before the
cursor, and escape sequences (arrow keys, function keys) are dropped whole.

For a client in character mode that asked the server to echo (Windows
telnet, PuTTY), the editor also says what to echo back, so that what the
typist sees is exactly the line the others will receive.  It knows the
terminal's width (`columns`, from NAWS; 80 when the client does not say), so
an erase or a redraw clears every row a long partial line wrapped onto.

`LineEditor.feed` yields what happened, in order:

    Echo(text)      show this to the user who is typing (echo mode only)
    Line(text)      a complete line, decoded, not yet cleaned
    LineTooLong()   a line went over the limit and was dropped: in echo mode
                    at once (the cursor is already on a fresh row, and the
                    keys typed next start a new line); otherwise up to its end
    Undecodable()   some input bytes were not valid in the charset
"""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Callable, Iterator

from attrs import frozen

from chatd.core.text import clean

ERASE_CHARACTER = ("\b", "\x7f")  # BS, DEL
ERASE_LINE = "\x15"  # Ctrl-U
ERASE_WORD = "\x17"  # Ctrl-W
DEFAULT_COLUMNS = 80

# Where in an escape sequence the editor is (the grammar text.clean removes,
# so that no part of a sequence is left as text): after ESC (and any
# intermediate bytes); in a CSI (ESC [ or U+009B, parameters, a final byte);
# after SS3 (ESC O, then one key); in a control string (ESC ] P X ^ _, or
# U+009D U+0090 U+0098 U+009E U+009F, up to BEL, ESC \ or U+009C); after an
# ESC inside a control string.
_AFTER_ESCAPE = "ESC"
_IN_CSI = "CSI"
_AFTER_SS3 = "SS3"
_IN_STRING = "string"
_AFTER_ESCAPE_IN_STRING = "string ESC"
# The charsets (codecs' canonical names: UTF-8, and these by prefix) whose
# decoding keeps no state from one line to the next, so that a read of
# several lines decodes as its lines would one by one: the one-byte ones and the
# multibyte ones whose bytes after the first are never a line end (GBK,
# GB18030, Big5, Shift_JIS, EUC).  Not the stateful ones (ISO-2022-JP,
# HZ, UTF-7) nor UTF-8 with a BOM, which `feed` alone decodes.
_DECODES_LINE_BY_LINE = ("ascii", "iso8859", "latin", "cp", "koi8", "mac-", "gb", "big5", "shift_jis",
                         "euc", "johab", "tis-620", "hp-roman8", "ptcp154", "kz1048")
_STARTS = {"\x1b": _AFTER_ESCAPE, "\x9b": _IN_CSI, **dict.fromkeys("\x90\x98\x9d\x9e\x9f", _IN_STRING)}


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

    __slots__ = ("max_line_bytes", "echo", "columns", "_pieces", "_width", "_line_bytes", "_discarding",
                 "_escape", "charset", "_decoder", "_decodes_whole")

    def __init__(self, max_line_bytes: int, charset: str) -> None:
        self.max_line_bytes = max_line_bytes
        self.echo = False
        self.columns = DEFAULT_COLUMNS
        # What has been typed of the current line, in pieces: appending to a
        # list keeps a line that arrives a byte at a time linear in its length.
        self._pieces: list[str] = []
        self._width: int | None = 0  # columns the partial line takes; None: not counted yet
        self._line_bytes = 0  # bytes received for the current line
        self._discarding = False  # the current line went over the limit
        self._escape = ""  # inside an escape sequence: which part of it
        self.set_charset(charset)

    @property
    def partial(self) -> str:
        """What has been typed of the current line."""
        return "".join(self._pieces)

    @property
    def width(self) -> int:
        """The columns the partial line takes on the typist's screen."""
        if self._width is None:
            self._width = display_width(self.partial)
        return self._width

    def set_charset(self, charset: str) -> None:
        """Decode what comes next in `charset` (a name from text.lookup_charset)."""
        self.charset = charset
        self._decoder = codecs.getincrementaldecoder(charset)("strict")
        self._decodes_whole = charset == "utf-8" or charset.startswith(_DECODES_LINE_BY_LINE)

    def clear_partial(self) -> str:
        """
        What takes the cursor to the start of the partial line on the
        typist's screen and clears it, every row it wrapped onto included.
        """
        return _clear(self.width, self.columns)

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

    def whole_lines(self, data: bytes) -> list[str] | None:
        """
        Every line of `data` at once, decoded, in the common case: `data` is
        whole lines (nothing of a line is held, and it ends with a line end)
        from a client in line mode, each within the limit, valid in the
        charset, and without a control character, so that no key is to be
        applied and `feed` would yield just these lines.  None otherwise,
        and `feed` takes it.  One decode and one split for a read of many
        lines, instead of a walk through the editor for each.
        """
        if self.echo or self._line_bytes or self._discarding or not self._decodes_whole or not data.endswith(b"\n"):
            return None
        limit = self.max_line_bytes
        if len(data) > limit and max(map(len, data.split(b"\n"))) > limit:
            return None
        try:
            lines = data.decode(self.charset).split("\n")
        except UnicodeDecodeError:
            return None
        lines.pop()  # what follows the last line end: nothing
        return lines if all(map(str.isprintable, lines)) else None

    # -- inside a line

    def _take(self, chunk: bytes) -> Iterator[Item]:
        if not chunk or self._discarding:
            return
        self._line_bytes += len(chunk)
        if self._line_bytes > self.max_line_bytes:
            yield from self._overflow()
            return
        text, undecodable = self._decode(chunk, final=False)
        if undecodable:
            yield Undecodable()
        if not self.echo and not self._escape and text.isprintable():
            # The common case, a whole line from nc or line-mode telnet: no
            # key to apply (every erase key and escape is a control character).
            self._pieces.append(text)
            self._width = None
            return
        echo = self._edit(text)
        if echo and self.echo:
            yield Echo(echo)

    def _overflow(self) -> Iterator[Item]:
        if self.echo:
            # The typist sees the error on a fresh row, and what they type
            # next is a new line, echoed as usual.
            yield Echo("\r\n")
            self._reset()
        else:
            # Drop what we hold now, so an endless line never grows memory,
            # and the rest of the line up to its end.
            self._reset()
            self._discarding = True
        yield LineTooLong()

    def _edit(self, text: str) -> str:
        """Apply `text`, key by key, to the partial line; return what to echo."""
        echo: list[str] = []
        for char in text:
            if self._escape:
                self._escape, consumed = _escape_after(self._escape, char)
                if consumed:
                    continue
            if char in _STARTS:
                self._escape = _STARTS[char]
            elif char in ERASE_CHARACTER:
                echo.append(self._erase(self._erase_last_character))
            elif char == ERASE_WORD:
                echo.append(self._erase(self._erase_word))
            elif char == ERASE_LINE:
                echo.append(self._erase(self._erase_line))
            else:
                # Kept and echoed as text.clean will leave it (a control
                # character is dropped, a TAB is a space), so the typist sees
                # what the others will.
                kept = clean(char)
                if kept:
                    self._pieces.append(kept)
                    if self._width is not None:
                        self._width += display_width(kept)
                    echo.append(kept)
        return "".join(echo)

    def _erase(self, erase: Callable[[], str]) -> str:
        """Erase with `erase`; return what takes the typist's screen from the old partial line to the new."""
        before = self.width
        erased = erase()
        if not erased:
            return ""
        after = before - display_width(erased)
        self._width = after
        if before < self.columns:  # all on one row, and the cursor has not wrapped: back up over it
            return "\b \b" * (before - after)
        return _clear(before, self.columns) + self.partial

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

    def _erase_word(self) -> str:
        """Remove the spaces before the cursor, then the word before them (as Ctrl-W in a terminal)."""
        erased: list[str] = []
        for in_word in (False, True):
            while True:
                char = self._erase_last_character()
                if not char:
                    break
                if char.isspace() == in_word:  # one too far: put it back
                    self._pieces.append(char)
                    break
                erased.append(char)
        return "".join(reversed(erased))

    def _erase_line(self) -> str:
        erased = self.partial
        self._pieces.clear()
        return erased

    def _end_line(self) -> Iterator[Item]:
        line, undecodable = self._decode(b"", final=True)
        line = self.partial + line
        discarded = self._discarding
        self._reset()
        if self.echo:
            yield Echo("\r\n")
        if undecodable and not discarded:
            yield Undecodable()
        if not discarded:
            yield Line(line)

    def _reset(self) -> None:
        """Start a new, empty line."""
        self._pieces.clear()
        self._width = 0
        self._line_bytes = 0
        self._discarding = False
        self._escape = ""
        self._decoder.reset()

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


def _escape_after(state: str, char: str) -> tuple[str, bool]:
    """
    Where an escape sequence stands after `char` ("" when it has ended), and
    whether `char` was part of it.  Keys send ESC [ parameters final (arrows:
    ESC [ D), ESC O and a key (arrows in application mode), or ESC and a key
    (Alt with a key); the rest is what text.clean also removes.
    """
    if state == _AFTER_ESCAPE:
        if char == "[":
            return _IN_CSI, True
        if char == "O":
            return _AFTER_SS3, True
        if char in "]PX^_":
            return _IN_STRING, True
        if " " <= char <= "/":  # intermediate bytes
            return _AFTER_ESCAPE, True
        return "", "0" <= char <= "~"  # the final byte, or not part of the sequence
    if state == _IN_CSI:
        if " " <= char <= "?":  # parameters and intermediates
            return _IN_CSI, True
        return "", "@" <= char <= "~"
    if state == _AFTER_SS3:
        return "", " " <= char <= "~"
    if state == _IN_STRING:
        if char in "\x07\x9c":
            return "", True
        return (_AFTER_ESCAPE_IN_STRING if char == "\x1b" else _IN_STRING), True
    # After an ESC inside a control string: ESC \ ends it; any other ESC ends it and starts a sequence.
    if char == "\\":
        return "", True
    return _escape_after(_AFTER_ESCAPE, char)


def _clear(width: int, columns: int) -> str:
    """
    From the end of `width` columns of text that started at the left edge,
    back to that edge, clearing to the end of the screen.  A terminal holds
    the cursor on a row's last column until the next character, so text
    that fills whole rows has not wrapped onto a new one yet.
    """
    rows_above = (width - 1) // columns if width > 0 else 0
    return "\r" + (f"\x1b[{rows_above}A" if rows_above else "") + "\x1b[J"


def display_width(text: str) -> int:
    """Columns `text` takes on a terminal: wide East Asian characters take two."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )
