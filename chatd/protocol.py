"""
The glue between a TCP connection and the room, and nothing else.

    bytes -> TelnetServer (telnet.py) -> LineEditor (lineedit.py) -> clean (text.py)
          -> parse_line (commands.py) -> Room.handle (room.py)
    Room -> deliver(Outgoing) -> bytes in this connection's charset (wire.py) -> socket

The only command handled here is /charset, because the charset belongs to
the connection, not to the room.
"""

from __future__ import annotations

from attrs import define, field, frozen
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chatd import render
from chatd.commands import Charset, parse_line
from chatd.lineedit import Echo, Line, LineEditor, LineTooLong, Undecodable
from chatd.listening import format_address
from chatd.room import IMember, Room
from chatd.telnet import TelnetServer
from chatd.text import clean, display_width, lookup_charset
from chatd.wire import Outgoing, encode

log = Logger()

DEFAULT_MAX_LINE_BYTES = 4096


@frozen
class Settings:
    """What every connection of a server shares."""

    server_name: str
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    charset: str = field(default="utf-8")

    @charset.validator
    def _check_charset(self, attribute: object, value: str) -> None:
        if lookup_charset(value) != value:
            raise ValueError(f"not a canonical usable charset name: {value!r}")


@implementer(IMember)
class ChatProtocol(TelnetServer):
    """One user's connection."""

    def __init__(self, room: Room, settings: Settings, peer: IAddress) -> None:
        super().__init__()
        self._room = room
        self._settings = settings
        self.peer = peer
        self._editor = LineEditor(settings.max_line_bytes, settings.charset)
        self._hinted_charset = False
        self._closing = False

    @property
    def charset(self) -> str:
        return self._editor.charset

    # -- from the transport

    def connectionMade(self) -> None:
        log.info("connection from {peer}", peer=_show(self.peer))
        self._room.arrive(self)

    def dataReceived(self, data: bytes) -> None:
        # Whatever goes wrong with one connection's input stays with that
        # connection: it is logged and this connection closed, the rest go on.
        try:
            super().dataReceived(data)
        except Exception:
            log.failure("error handling input from {peer}; closing", peer=_show(self.peer))
            self.transport.abortConnection()

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        self._room.depart(self, "Quit" if reason.check(ConnectionDone) else "Connection lost")

    # -- from the telnet layer

    def echo_changed(self, echoing: bool) -> None:
        self._editor.echo = echoing

    def applicationDataReceived(self, data: bytes) -> None:
        for item in self._editor.feed(data):
            match item:
                case Line(text):
                    self._line_received(text)
                case Echo(text):
                    self.transport.write(encode(text, self.charset))
                case LineTooLong():
                    self._tell(render.line_too_long(self._settings.max_line_bytes))
                case Undecodable():
                    if not self._hinted_charset:
                        self._hinted_charset = True
                        self._tell(render.undecodable_hint(self.charset))

    def _line_received(self, text: str) -> None:
        if self._closing:
            return
        command = parse_line(clean(text))
        if command is None:
            return
        if isinstance(command, Charset):
            self._set_charset(command.name)
        else:
            self._room.handle(self, command)

    def _set_charset(self, name: str | None) -> None:
        if name is None:
            self._tell(render.charset_shown(self.charset))
            return
        charset = lookup_charset(name)
        if charset is None:
            self._tell(render.error(f"unknown charset: {name}"))
            return
        self._editor.set_charset(charset)
        self._hinted_charset = False
        self._tell(render.charset_is(charset))

    def _tell(self, line: str) -> None:
        self.deliver(Outgoing.line(line))

    # -- IMember, from the room

    def deliver(self, outgoing: Outgoing) -> None:
        data = outgoing.encoded(self.charset)
        partial = self._editor.partial if self.echoing else ""
        if not partial:
            self.transport.write(data)
            return
        # The user is typing: print the message above their partial line,
        # then draw the partial line again, so nothing gets garbled.
        blank = "\r" + " " * display_width(partial) + "\r"
        self.transport.writeSequence(
            [encode(blank, self.charset), data, encode(partial, self.charset)]
        )

    def disconnect(self, reason: str) -> None:
        self._closing = True
        self.transport.loseConnection()


@define(slots=False)  # Factory keeps state in instance attributes of its own
class ChatFactory(Factory):
    """Builds a ChatProtocol for each connection to the room."""

    room: Room
    settings: Settings
    noisy = False  # no "Starting factory" log lines

    def buildProtocol(self, addr: IAddress) -> ChatProtocol:
        protocol = ChatProtocol(self.room, self.settings, addr)
        protocol.factory = self
        return protocol


def _show(address: IAddress) -> str:
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    return str(address) if host is None or port is None else format_address(host, port)
