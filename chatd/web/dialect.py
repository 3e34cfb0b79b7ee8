"""
Events -> WebSocket frames of JSON.  Pure.

A web session's dialect.  Fan-out encodes a turn's events once per dialect
in use (see chatd.core.batch): here each event is its JSON array
(chatd.web.render.event), and a member's share of the turn becomes one
WebSocket text frame,

    {"type": "events", "events": [EVENT, EVENT, ...]}

whose bytes are the same for every member with that share, so they are
framed once, in one buffer, and sent as they are (a server's frames are
not masked).  The
frame is RFC 6455's (section 5.2): FIN and the text opcode, the payload
length in 7, 16 or 64 bits, then the payload.  Messages from the browser
are read in chatd.web.frames, which also makes the control frames (pings,
pongs, the close); only these data frames are made here, so that fan-out
does not frame the same bytes again for every member.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import accumulate

from chatd.core.batch import Buffer
from chatd.core.events import Event
from chatd.web.render import event as render_event
from chatd.web.render import utf8

_FIN_TEXT = 0x81  # FIN, opcode 1 (text)
_EVENTS_START = b'{"type":"events","events":['
_EVENTS_END = b"]}"


def frame_header(length: int) -> bytes:
    """The header of an unmasked, final text frame carrying `length` bytes."""
    if length < 126:
        return bytes((_FIN_TEXT, length))
    if length < 1 << 16:
        return struct.pack("!BBH", _FIN_TEXT, 126, length)
    return struct.pack("!BBQ", _FIN_TEXT, 127, length)


def text_frame(payload: bytes) -> bytes:
    """One text frame carrying `payload` (UTF-8)."""
    return frame_header(len(payload)) + payload


class JsonDialect:
    """The web's one dialect: UTF-8 JSON, the same from every current channel."""

    uses_current = False

    def encode_events(self, events: Sequence[Event], current: str | None) -> tuple[bytes, list[int]]:
        # Each event with the comma that separates it from the one before;
        # `frame` drops the first one's.
        parts = [utf8("," + render_event(event)) for event in events]
        return b"".join(parts), [0, *accumulate(map(len, parts))]

    def frame(self, parts: list[Buffer]) -> list[Buffer]:
        # One buffer, made once for every member this share goes to: a
        # member's send then copies nothing (a list of parts would be joined
        # for each member whose socket cannot take it all at once).
        first = memoryview(parts[0])[1:]  # without its comma
        length = len(_EVENTS_START) + len(first) + sum(map(len, parts[1:])) + len(_EVENTS_END)
        return [b"".join([frame_header(length), _EVENTS_START, first, *parts[1:], _EVENTS_END])]

    def __repr__(self) -> str:
        return "JSON"


JSON = JsonDialect()
