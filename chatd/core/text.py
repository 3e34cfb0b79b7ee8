"""
Clean decoded text.  Pure: no I/O, no Twisted.

Everything a user types passes through `clean` before anyone else sees it, so
no user can move another user's cursor, recolour their screen, reorder their
text with bidi overrides, or fake a line that seems to come from someone else.
"""

from __future__ import annotations

import re

# Whole escape sequences go, not only their ESC: removing just the ESC of
# "ESC[31m" would leave "[31m" on everybody's screen.
#   CSI  ESC [ params intermediates final   (or the 8-bit CSI, U+009B)
#   OSC, DCS, SOS, PM, APC: ESC ] P X ^ _ ... up to BEL or ST (ESC \), or the line end
#   any other two- or three-character ESC sequence
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)

# What is left after escape sequences: C0 controls, DEL, C1 controls, the
# bidi embedding/override/isolate characters, and the Unicode line and
# paragraph separators (some terminals start a new line at them).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
# The same, less IRC's formatting codes (below).
_CONTROL_BUT_FORMATTING = re.compile(
    "[\x00-\x01\x05-\x08\x0a-\x0e\x10\x12-\x15\x17-\x1c\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
# IRC's formatting codes: bold, colour (with its numbers), hex colour, reset,
# monospace, reverse, italic, strikethrough, underline.
_FORMATTING = re.compile("\x03(?:\\d{1,2}(?:,\\d{1,2})?)?|\x04(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?"
                         "|[\x02\x0f\x11\x16\x1d\x1e\x1f]")


def clean(text: str, keep_formatting: bool = False) -> str:
    """
    Return `text` with every control character and escape sequence removed
    and TAB turned into a space; with `keep_formatting`, IRC's formatting
    codes stay (for IRC clients, who show them; `plain` takes them out for
    everyone else).
    """
    if text.isprintable():  # the common case: nothing to do
        return text
    text = _ESCAPE_SEQUENCE.sub("", text)
    return (_CONTROL_BUT_FORMATTING if keep_formatting else _CONTROL).sub("", text.replace("\t", " "))


_FORMATTING_CODES = "\x02\x03\x04\x0f\x11\x16\x1d\x1e\x1f"
_FORMATTING_CODE = re.compile(f"[{_FORMATTING_CODES}]")
# Up to this length (a line or two) one search for any code is quicker; past it, one search for each code.
_SHORT_TEXT = 256


def has_formatting(text: str) -> bool:
    """
    Whether `text` holds any of IRC's formatting codes: in one search for
    a line or two; in a text of many lines (a turn's), one of str's own
    searches for each code, quicker there than a character class.
    """
    if len(text) < _SHORT_TEXT:
        return _FORMATTING_CODE.search(text) is not None
    return any(code in text for code in _FORMATTING_CODES)


def plain(text: str) -> str:
    """`text` without IRC's formatting codes (bold, colours ...), for front doors that do not show them."""
    if text.isprintable():  # the common case: nothing to do
        return text
    return _FORMATTING.sub("", text)
