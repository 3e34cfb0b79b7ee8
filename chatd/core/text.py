"""
Step 4 of the data path: clean decoded text, and the rules for nicknames and
charsets.  Pure: no I/O, no Twisted.

Everything a user types passes through `clean` before anyone else sees it, so
no user can move another user's cursor, recolour their screen, reorder their
text with bidi overrides, or fake a line that seems to come from someone else.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from importlib import resources

MAX_NICK_CHARS = 24
RESERVED_NICKS = frozenset({"server", "chatd"})
NICK_PUNCTUATION = "_-[]{}|^"

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


def clean(text: str) -> str:
    """
    Return `text` with every control character and escape sequence removed
    and TAB turned into a space.
    """
    if text.isprintable():  # the common case: nothing to do
        return text
    text = _ESCAPE_SEQUENCE.sub("", text)
    return _CONTROL.sub("", text.replace("\t", " "))


class NicknameError(ValueError):
    """A nickname that breaks the rules; str() is the reason a user sees."""


def nickname_key(nick: str) -> str:
    """The form in which two nicknames are compared: case-insensitive."""
    return nick.casefold()


def _load_prototypes() -> dict[int, str]:
    """Unicode's confusable prototypes (see confusables.tsv and tools/make_confusables.py)."""
    prototypes = {}
    with resources.files("chatd.core").joinpath("confusables.tsv").open(encoding="utf-8") as file:
        for line in file:
            if line.startswith("#") or not line.strip():
                continue
            source, prototype = line.rstrip("\n").split("\t")
            prototypes[int(source, 16)] = "".join(chr(int(point, 16)) for point in prototype.split())
    return prototypes


_PROTOTYPES = _load_prototypes()


def nickname_skeletons(nick: str) -> frozenset[str]:
    """
    The forms in which two nicknames that look alike meet: two nicknames
    look alike when they share one (Cyrillic "а" and Latin "a", "rn" and "m",
    capital "I" and "l", "0" and "O").

    Unicode's TR39 skeleton maps each character to its prototype, and is
    defined on the text as typed.  chatd compares nicknames ignoring case, so
    the skeleton is taken both ways: of the casefolded nickname ("ΑLICE" and
    "alice"), and of the nickname as typed, casefolded after mapping, so that
    a capital that looks like another lower-case letter is caught before
    casefolding hides it ("aIice", whose "I" folds to "i", and "alice").
    """
    folded_first = _skeleton(nick.casefold())
    mapped_first = _skeleton(_skeleton(nick).casefold())
    return frozenset((folded_first, mapped_first))


def _skeleton(text: str) -> str:
    """The TR39 skeleton: NFD, each character to its prototype, NFD again."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).translate(_PROTOTYPES))


def check_nickname(raw: str) -> str:
    """
    Return `raw` as a valid nickname (NFC-normalised), or raise
    NicknameError with the reason.

    Letters of any script, digits and _-[]{}|^ are allowed, and combining
    marks after the first character (needed for Devanagari, Thai and others).
    """
    nick = unicodedata.normalize("NFC", raw.strip())
    if not nick:
        raise NicknameError("nickname is empty")
    if len(nick) > MAX_NICK_CHARS:
        raise NicknameError(f"nickname is too long (max {MAX_NICK_CHARS} characters)")
    for position, char in enumerate(nick):
        category = unicodedata.category(char)
        allowed = (
            category[0] == "L"
            or category == "Nd"
            or char in NICK_PUNCTUATION
            or (category[0] == "M" and position > 0)
        )
        if not allowed:
            if char.isspace():
                shown = "spaces"
            elif char.isprintable():
                shown = repr(char)
            else:
                shown = f"U+{ord(char):04X}"
            raise NicknameError(f"nickname may not contain {shown}: use letters, digits and {NICK_PUNCTUATION}")
    if nick[0] == "-" or unicodedata.category(nick[0]) == "Nd":
        raise NicknameError("nickname may not start with a digit or -")
    if nickname_key(nick) in RESERVED_NICKS:
        raise NicknameError(f"nickname is reserved: {nick}")
    return nick


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


def display_width(text: str) -> int:
    """Columns `text` takes on a terminal: wide East Asian characters take two."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )
