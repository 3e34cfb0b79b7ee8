"""
Events -> IRC lines, as bytes.  Pure.

An IRC session's dialect: UTF-8, CR LF, the same from every channel (IRC
has no current channel).  Fan-out encodes a turn's events once for every
IRC session (see chatd.core.batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

from chatd.core.batch import PlainFrames
from chatd.core.events import Event
from chatd.irc import render


class IrcDialect(PlainFrames):
    uses_current = False

    def encode_events(self, events: Sequence[Event], current: str | None) -> tuple[bytes, list[int]]:
        parts = [encode(render.event(event)) for event in events]
        return b"".join(parts), [0, *accumulate(map(len, parts))]

    def __repr__(self) -> str:
        return "IRC"


def encode(lines: Sequence[str]) -> bytes:
    """Lines as UTF-8 with CR LF ends (a lone surrogate, which no valid text holds, as "?")."""
    return "".join(text + "\r\n" for text in lines).encode("utf-8", "replace")


IRC = IrcDialect()
