"""
Steps 8-9 of the data path: rendered text -> bytes on the wire.  Pure.

Fan-out is the hot path: a message goes to every member, so it is rendered
once into an `Outgoing`, and each member asks it for the bytes in its own
charset.  The bytes for a charset are made once and shared by every member
that uses that charset.  A turn's messages go out as a `Batch`: encoded once
per charset, and each member's `Share` (all of it, or all but their own) is
cut from those bytes, so no work is done per message per member.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from itertools import accumulate

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

    def encoded(self, charset: str) -> bytes:
        data = self._encoded.get(charset)
        if data is None:
            data = self._encoded[charset] = encode(self.text, charset)
        return data

    def __repr__(self) -> str:
        return f"Outgoing({self.text!r})"


@lru_cache(maxsize=None)
def writes_ascii_as_ascii(charset: str) -> bool:
    """True if `charset` encodes every ASCII character as its own byte (not UTF-7, not HZ)."""
    ascii_bytes = bytes(range(128))
    return ascii_bytes.decode("ascii").encode(charset) == ascii_bytes


class Batch:
    """The public messages of one turn (rendered lines), encoded once per charset for every member."""

    __slots__ = ("texts", "_ascii", "_encoded")

    def __init__(self, lines: list[str]) -> None:
        self.texts = [line + "\r\n" for line in lines]
        self._ascii: bytes | None = None
        self._encoded: dict[str, tuple[bytes, list[int]]] = {}
        joined = "".join(self.texts)
        if joined.isascii():  # the usual case: the same bytes in every charset that writes ASCII as ASCII
            self._ascii = joined.encode("ascii")

    def __len__(self) -> int:
        return len(self.texts)

    def share(self, runs: list[tuple[int, int]]) -> Share:
        """The messages in these [start, end) runs, as one delivery."""
        return Share(self, runs)

    def encoded(self, charset: str) -> tuple[bytes, list[int]]:
        """All the messages in `charset`, and where each one starts in those bytes."""
        found = self._encoded.get(charset)
        if found is None:
            if self._ascii is not None and writes_ascii_as_ascii(charset):
                found = (self._ascii, [0, *accumulate(map(len, self.texts))])
            else:
                parts = [encode(text, charset) for text in self.texts]
                found = (b"".join(parts), [0, *accumulate(map(len, parts))])
            self._encoded[charset] = found
        return found


class Share:
    """Some runs of a `Batch`'s messages, on their way to one or more members; used like an `Outgoing`."""

    __slots__ = ("_batch", "_runs", "_encoded")

    def __init__(self, batch: Batch, runs: list[tuple[int, int]]) -> None:
        self._batch = batch
        self._runs = runs
        self._encoded: dict[str, bytes] = {}

    @property
    def text(self) -> str:
        texts = self._batch.texts
        return "".join(text for start, end in self._runs for text in texts[start:end])

    def encoded(self, charset: str) -> bytes:
        found = self._encoded.get(charset)
        if found is None:
            data, offsets = self._batch.encoded(charset)
            found = self._encoded[charset] = b"".join([data[offsets[start] : offsets[end]] for start, end in self._runs])
        return found

    def __repr__(self) -> str:
        return f"Share({self.text!r})"
