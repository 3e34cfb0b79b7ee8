"""
Steps 8-9 of the data path: rendered text -> bytes on the wire.  Pure.

Fan-out is the hot path: a message goes to every member, so it is rendered
once into an `Outgoing`, and each member asks it for the bytes in its own
charset.  The bytes for a charset are made once and shared by every member
that uses that charset.
"""

from __future__ import annotations

from collections.abc import Iterable

IAC = b"\xff"


def telnet_escape(data: bytes) -> bytes:
    """Double every 0xFF byte, so a telnet client reads it as data (RFC 854)."""
    return data.replace(IAC, IAC + IAC)


def encode(text: str, charset: str) -> bytes:
    """`text` in `charset` (unencodable characters as ?), telnet-escaped."""
    return telnet_escape(text.encode(charset, "replace"))


class Outgoing:
    """One or more rendered lines on their way to one or more members."""

    __slots__ = ("text", "_encoded")

    def __init__(self, lines: Iterable[str]) -> None:
        self.text = "".join(line + "\r\n" for line in lines)
        self._encoded: dict[str, bytes] = {}

    @classmethod
    def line(cls, line: str) -> Outgoing:
        return cls((line,))

    @classmethod
    def joined(cls, parts: list[Outgoing]) -> Outgoing:
        """All of `parts` in one, in order."""
        if len(parts) == 1:
            return parts[0]
        joined = cls(())
        joined.text = "".join(part.text for part in parts)
        return joined

    def encoded(self, charset: str) -> bytes:
        data = self._encoded.get(charset)
        if data is None:
            data = self._encoded[charset] = encode(self.text, charset)
        return data

    def __repr__(self) -> str:
        return f"Outgoing({self.text!r})"
