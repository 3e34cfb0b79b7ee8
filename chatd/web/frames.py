"""
A browser's WebSocket frames -> whole text messages, for the usual read;
and the control frames the web session answers and sends.  Pure.

A browser sends each chat message as one frame: final, text, masked (RFC
6455, 5.2), a few dozen bytes.  twisted.web.websocket reads frames through
wsproto, which takes about 25 us a message (its general parser: every
opcode, fragments, extensions), several times what the rest of a message's
way through chatd costs, and keeps about 2 KB of state a connection.
`split` reads just those frames, and the pings and pongs between them,
from the front of what was read; the web session (chatd.web.protocol)
hands each text to the chat at once and answers each ping (`pong_to`).
Everything from the first frame of any other kind on (binary, fragmented,
a close, one longer than a message may be, text that is not UTF-8) goes to
twisted.web.websocket's reader and wsproto, made then, for the rest of the
connection: they make every answer and every error.

The control frames chatd makes itself (a pong, a ping, a close) are
wsproto's, made on a wsproto connection of their own.
"""

from __future__ import annotations

from attrs import frozen
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Ping

_TEXT = 0x81  # FIN and opcode 1: a whole text message
_PING, _PONG = 0x89, 0x8A  # FIN and opcode 9 or 10 (a control frame is always final)
_MASKED = 0x80
_LENGTH = 0x7F
_LENGTH_16 = 126  # the length in the next two bytes
_MAX_CONTROL = 125  # a control frame's payload, at most


@frozen
class Frames:
    """What `split` found at the front of a read."""

    # In order: a str is a whole text message; bytes, a whole ping or pong frame.
    messages: list[str | bytes]
    # Where the frames it took end.
    end: int
    # What comes from `end` on: False, the start of a frame it takes, to be
    # read again with what comes next; True, anything else (for wsproto).
    other: bool


def split(data: bytes, max_text: int) -> Frames:
    """
    The whole text messages of at most `max_text` bytes, and the pings and
    pongs, at the front of `data`, up to the first frame of another kind
    (or the first one that is not all there yet).
    """
    messages: list[str | bytes] = []
    position, size = 0, len(data)
    while position < size:
        first = data[position]
        if first != _TEXT and first != _PING and first != _PONG:
            return Frames(messages, position, True)
        if position + 2 > size:
            break
        second = data[position + 1]
        length = second & _LENGTH
        if not second & _MASKED:  # a browser masks every frame: wsproto refuses this one
            return Frames(messages, position, True)
        header = 6  # two bytes, then the mask
        if length == _LENGTH_16 and first == _TEXT:
            if position + 4 > size:
                break
            length = int.from_bytes(data[position + 2:position + 4], "big")
            header = 8
            if length < _LENGTH_16:  # not the shortest form: wsproto refuses it
                return Frames(messages, position, True)
        elif length > _MAX_CONTROL:  # a 64-bit length, or a control frame longer than one may be
            return Frames(messages, position, True)
        if length > max_text:
            return Frames(messages, position, True)
        end = position + header + length
        if end > size:
            break
        if first != _TEXT:
            messages.append(data[position:end])
        else:
            text = _text(data[position + header - 4:position + header], data[position + header:end])
            if text is None:  # not UTF-8: wsproto closes the connection, saying so
                return Frames(messages, position, True)
            messages.append(text)
        position = end
    return Frames(messages, position, False)


def _text(mask: bytes, payload: bytes) -> str | None:
    """The payload unmasked (RFC 6455, 5.3) and decoded; None if it is not UTF-8."""
    length = len(payload)
    if length:
        key = (mask * (length // 4 + 1))[:length]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def is_ping(frame: bytes) -> bool:
    """Whether a control frame `split` found is a ping (else, a pong)."""
    return frame[0] == _PING


def pong_to(ping: bytes) -> bytes:
    """The answer to a whole ping frame from the browser: a pong with its payload."""
    connection = Connection(ConnectionType.SERVER)
    connection.receive_data(ping)
    return b"".join(connection.send(event.response()) for event in connection.events() if isinstance(event, Ping))


def ping_frame(payload: bytes) -> bytes:
    """A ping frame from the server."""
    return Connection(ConnectionType.SERVER).send(Ping(payload))


def close_frame(code: int) -> bytes:
    """A close frame from the server, with its code (the start of WebSocket's closing handshake)."""
    return Connection(ConnectionType.SERVER).send(CloseConnection(code))
