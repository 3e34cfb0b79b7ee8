"""
The charsets a telnet user can choose with /charset.  Pure.
"""

from __future__ import annotations

import codecs


class CharsetError(ValueError):
    """A charset chatd cannot use; str() is the reason a user sees."""


def check_charset(name: str) -> str:
    """
    The canonical name of the text codec `name` if chatd can use it on a
    telnet line; else CharsetError saying why not.

    Usable means: a text encoding that writes ASCII as ASCII, so that line
    ends, telnet commands and command words survive (which rules out UTF-16,
    UTF-32 and the like).
    """
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        raise CharsetError(f"unknown charset: {name}") from None
    if not getattr(info, "_is_text_encoding", True):
        raise CharsetError(f"{info.name} is not a text encoding")
    try:
        keeps_ascii = "Az09 /:\r\n".encode(info.name) == b"Az09 /:\r\n"
    except (UnicodeError, LookupError):
        keeps_ascii = False
    if not keeps_ascii:
        raise CharsetError(
            f"{info.name} cannot be used here: it does not write ASCII as ASCII, so line ends and commands would break"
        )
    return info.name


def lookup_charset(name: str) -> str | None:
    """The canonical name of `name` if chatd can use it (see check_charset), else None."""
    try:
        return check_charset(name)
    except CharsetError:
        return None
