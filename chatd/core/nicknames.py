"""
The rules for nicknames and channel names: what is valid, when two are the
same (ignoring case), and when two look alike (Unicode TR39 confusables),
so that no one can pass for someone else, or one channel for another.
Pure: no I/O, no Twisted.
"""

from __future__ import annotations

import string
import unicodedata
from functools import lru_cache
from importlib import resources
from typing import Generic, TypeVar

MAX_NICK_CHARS = 24
# The longest real name (IRC's USER and SETNAME), as servers commonly allow.
MAX_REALNAME_CHARS = 100
# "nickserv": IRC clients send it passwords (chatd answers it itself); nobody may pose as it.
RESERVED_NICKS = frozenset({"server", "chatd", "nickserv"})
NICK_PUNCTUATION = "_-[]{}|^"
MAX_CHANNEL_CHARS = 32  # after the "#"
CHANNEL_PUNCTUATION = "-_."
_ASCII_LETTERS_AND_DIGITS = string.ascii_letters + string.digits


class NicknameError(ValueError):
    """A nickname that breaks the rules; str() is the reason a user sees."""


def name_key(nick: str) -> str:
    """The form in which two nicknames, or two channel names, are compared: case-insensitive."""
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


# A name is checked, then claimed in the same turn: two lookups, one computation.  A small cache serves a
# storm of logins as well as a large one, which held a frozenset for each of the last 4096 users (300 bytes each).
@lru_cache(maxsize=256)
def skeletons(nick: str) -> frozenset[str]:
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
    refused = _disallowed_character(nick, NICK_PUNCTUATION)
    if refused is not None:
        raise NicknameError(f"nickname may not contain {refused}: use letters, digits and {NICK_PUNCTUATION}")
    if nick[0] == "-" or unicodedata.category(nick[0]) == "Nd":
        raise NicknameError("nickname may not start with a digit or -")
    if name_key(nick) in RESERVED_NICKS:
        raise NicknameError(f"nickname is reserved: {nick}")
    return nick


def _disallowed_character(name: str, punctuation: str) -> str | None:
    """
    The first character of `name` that is not a letter of any script, a
    digit, one of `punctuation` or a combining mark after the first
    character (needed for Devanagari, Thai and others), as a user should
    read it; None when all are allowed.
    """
    if name.isascii() and not name.strip(_ASCII_LETTERS_AND_DIGITS + punctuation):  # most names: all allowed
        return None
    for position, char in enumerate(name):
        category = unicodedata.category(char)
        if not (category[0] == "L" or category == "Nd" or char in punctuation
                or (category[0] == "M" and position > 0)):
            return "spaces" if char.isspace() else repr(char) if char.isprintable() else f"U+{ord(char):04X}"
    return None


class ChannelNameError(ValueError):
    """A channel name that breaks the rules; str() is the reason a user sees."""


def check_channel_name(raw: str) -> str:
    """
    `raw` as a channel name: "#" (added when missing), then 1 to 32
    letters of any script, digits and -_. (NFC-normalised); else
    ChannelNameError with the reason.
    """
    name = unicodedata.normalize("NFC", raw.strip())
    bare = name[1:] if name.startswith("#") else name
    if not bare:
        raise ChannelNameError("channel name is empty")
    if len(bare) > MAX_CHANNEL_CHARS:
        raise ChannelNameError(f"channel name is too long (max {MAX_CHANNEL_CHARS} characters after #)")
    refused = _disallowed_character(bare, CHANNEL_PUNCTUATION)
    if refused is not None:
        raise ChannelNameError(
            f"channel name may not contain {refused}: use # then letters, digits and {CHANNEL_PUNCTUATION}")
    return "#" + bare


Holder = TypeVar("Holder")


class Registry(Generic[Holder]):
    """
    Who holds which name: by key (case-insensitive) and by every TR39
    skeleton, so a name that looks like a held one is refused as taken.
    Serves nicknames (held by sessions) and channel names (held by channels).
    """

    def __init__(self) -> None:
        self._by_key: dict[str, Holder] = {}
        # The held name of each skeleton (its holder is the name's, by key): the name itself, not a
        # (holder, name) pair, which cost every user 56 bytes.  No two holders share a skeleton (clash).
        self._by_skeleton: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def holders(self) -> list[Holder]:
        """Everyone who holds a name (once each, for each name they hold)."""
        return list(self._by_key.values())

    def holder(self, name: str) -> Holder | None:
        return self._by_key.get(name_key(name))

    def clash(self, name: str, claimant: Holder | None) -> str | None:
        """
        None if `claimant` may hold `name`; else the held name it clashes
        with: the same name, or one that looks like it.
        """
        holder = self._by_key.get(name_key(name))
        if holder is not None and holder is not claimant:
            return name
        for skeleton in skeletons(name):
            held = self._by_skeleton.get(skeleton)
            if held is not None and self._by_key.get(name_key(held)) is not claimant:
                return held
        return None

    def claim(self, name: str, holder: Holder) -> None:
        self._by_key[name_key(name)] = holder
        for skeleton in skeletons(name):
            self._by_skeleton[skeleton] = name

    def release(self, name: str, holder: Holder | None = None) -> None:
        """Free `name`; if `holder` is given, only what it holds of it (another may hold a look-alike)."""
        for skeleton in skeletons(name):  # first: whose each skeleton is, is known by its name's key
            held = self._by_skeleton.get(skeleton)
            if held is not None and (holder is None or self._by_key.get(name_key(held)) is holder):
                del self._by_skeleton[skeleton]
        key = name_key(name)
        if holder is None or self._by_key.get(key) is holder:
            del self._by_key[key]


class RateWindow:
    """At most `count` of something (renames, wrong passwords) per `seconds`, for each who (a user, an address)."""

    def __init__(self, count: int = 3, seconds: float = 60.0) -> None:
        self.count, self.seconds = count, seconds
        self._times: dict[object, list[float]] = {}

    def wait(self, who: object, now: float) -> float:
        """Seconds `who` must wait before the next; 0: may go on now."""
        recent = [at for at in self._times.get(who, ()) if now - at < self.seconds]
        self._times[who] = recent
        return 0.0 if len(recent) < self.count else recent[0] + self.seconds - now

    def happened(self, who: object, now: float) -> None:
        self._times.setdefault(who, []).append(now)

    def forget(self, who: object) -> None:
        self._times.pop(who, None)
