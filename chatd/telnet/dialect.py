"""
Rendered text -> bytes on a telnet connection.  Pure.

A telnet user's dialect is their charset (and the server's default
channel, whose joins read "users online").  IRC users' bold and colours
are left out (chatd.core.text.plain).  Fan-out encodes a turn's events
once per dialect in use (see chatd.core.batch), and replies once per
`Outgoing` for every member that shares it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache, lru_cache
from itertools import accumulate

from attrs import frozen

from chatd.core.batch import PlainFrames
from chatd.core.events import Event
from chatd.core.text import has_formatting, plain
from chatd.telnet import render

IAC = b"\xff"


def telnet_escape(data: bytes) -> bytes:
    """Double every 0xFF byte, so a telnet client reads it as data (RFC 854)."""
    return data.replace(IAC, IAC + IAC)


def encode(text: str, charset: str) -> bytes:
    """`text` in `charset` (unencodable characters as ?), telnet-escaped."""
    return telnet_escape(text.encode(charset, "replace"))


@lru_cache(maxsize=None)
def writes_ascii_as_ascii(charset: str) -> bool:
    """True if `charset` encodes every ASCII character as its own byte (not UTF-7, not HZ)."""
    ascii_bytes = bytes(range(128))
    return ascii_bytes.decode("ascii").encode(charset) == ascii_bytes


@frozen(eq=False)  # compared and hashed by identity: see of()
class TelnetDialect(PlainFrames):
    charset: str
    lobby: str = "#lobby"

    # Lines of other channels than the member's current one carry the channel.
    uses_current = True

    @staticmethod
    @cache
    def of(charset: str, lobby: str) -> TelnetDialect:
        """
        The one dialect for this charset and default channel, which every
        session that uses them shares: fan-out looks a dialect up for every
        delivery, and identity is the cheapest hash and comparison there is.
        """
        return TelnetDialect(charset, lobby)

    def encode_events(self, events: Sequence[Event], current: str | None) -> tuple[bytes, list[int]]:
        texts = [text + "\r\n" if (text := render.event(event, current, self.lobby)) else "" for event in events]
        joined = "".join(texts)
        if has_formatting(joined):  # IRC users' bold and colours: left out
            texts = [plain(text[:-2]) + "\r\n" if text else "" for text in texts]
            joined = "".join(texts)
        if joined.isascii() and writes_ascii_as_ascii(self.charset):
            # The usual case: the same bytes in every charset, lengths as in characters.
            return joined.encode("ascii"), [0, *accumulate(map(len, texts))]
        parts = [encode(text, self.charset) for text in texts]
        return b"".join(parts), [0, *accumulate(map(len, parts))]


class Outgoing:
    """One or more rendered lines on their way to one or more connections."""

    __slots__ = ("text", "_encoded")

    def __init__(self, lines: Iterable[str]) -> None:
        text = "".join(line + "\r\n" for line in lines)
        self.text = plain(text) if has_formatting(text) else text
        self._encoded: dict[str, bytes] = {}

    def encoded(self, charset: str) -> bytes:
        data = self._encoded.get(charset)
        if data is None:
            data = self._encoded[charset] = encode(self.text, charset)
        return data

    def __repr__(self) -> str:
        return f"Outgoing({self.text!r})"
