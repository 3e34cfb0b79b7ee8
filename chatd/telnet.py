"""
Step 2 of the data path: bytes from the socket -> application bytes.

`TelnetServer` is `twisted.conch.telnet.Telnet` with two things of our own:

- The policy: which options a client may turn on.  The server initiates no
  negotiation, so `nc` users never see a telnet byte.  A client that asks the
  server to ECHO (Windows telnet and PuTTY do, then send each keystroke on its
  own) gets it, and with it server-side line editing; SGA is accepted both
  ways; every other option is refused.  Answers follow Twisted's RFC 1143
  state machine, which never answers in a loop.

- The byte parser (`dataReceived`).  Twisted's parser raises on an unknown
  byte after IAC (losing the rest of that read), drops the connection when a
  subnegotiation runs past 4096 bytes, and walks the input one byte at a time
  in Python.  Ours ignores unknown commands, discards an over-long
  subnegotiation and carries on, copies plain data in slices, and also turns
  every line end (LF, CR LF, CR NUL, or a bare CR) into a single LF, so the
  layer above only ever splits on LF.  A CR LF split across two reads is one
  line end.
"""

from __future__ import annotations

import re

from twisted.conch.telnet import (
    DO,
    DONT,
    EC,
    ECHO,
    IAC,
    SB,
    SE,
    SGA,
    WILL,
    WONT,
    Telnet,
)
from twisted.logger import Logger

log = Logger()

MAX_SUBNEGOTIATION_BYTES = 4096

_SPECIAL = re.compile(b"[\r\xff]")

# The first bytes of a connection from a web browser or a TLS client.
_HTTP_REQUEST_LINE = re.compile(rb"(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|CONNECT|PATCH|TRACE) \S+ HTTP/\d")
_TLS_CLIENT_HELLO = re.compile(rb"\x16\x03[\x00-\x04]")


def wrong_protocol(first_bytes: bytes) -> str | None:
    """"HTTP" or "TLS" if a connection's first bytes are that, not telnet; else None."""
    if _HTTP_REQUEST_LINE.match(first_bytes):
        return "HTTP"
    if _TLS_CLIENT_HELLO.match(first_bytes):
        return "TLS"
    return None

# Parser states.
_DATA = "data"
_CR = "after CR"
_IAC = "after IAC"
_OPTION = "after WILL/WONT/DO/DONT"
_SB = "in subnegotiation"
_SB_IAC = "after IAC in subnegotiation"


class TelnetServer(Telnet):
    """
    The telnet side of a chat connection.  Subclasses receive application
    bytes in `applicationDataReceived` and hear about echo in `echo_changed`.
    """

    # Twisted's Telnet.__init__ builds two dicts and four bound methods for
    # every connection; with thousands of idle users that adds up, so the
    # commands are dispatched from one table for the class instead.
    negotiationMap: dict[bytes, object] = {}  # no subnegotiation is handled (read-only)
    _COMMANDS = {WILL: Telnet.telnet_WILL, WONT: Telnet.telnet_WONT, DO: Telnet.telnet_DO, DONT: Telnet.telnet_DONT}

    def __init__(self) -> None:
        self.options: dict[bytes, object] = {}
        self.echoing = False
        self._state = _DATA
        self._verb = b""
        self._subnegotiation = bytearray()
        self._subnegotiation_overflowed = False

    def echo_changed(self, echoing: bool) -> None:
        """The client turned server-side echo on or off."""

    def commandReceived(self, command: bytes, argument: bytes | None) -> None:
        handler = self._COMMANDS.get(command)
        if handler is None:
            self.unhandledCommand(command, argument)
        else:
            handler(self, argument)

    # -- option policy (called by Twisted's negotiation state machine)

    def enableLocal(self, option: bytes) -> bool:
        if option == ECHO:
            self.echoing = True
            self.echo_changed(True)
            return True
        return option == SGA

    def disableLocal(self, option: bytes) -> None:
        if option == ECHO:
            self.echoing = False
            self.echo_changed(False)

    def enableRemote(self, option: bytes) -> bool:
        return option == SGA

    def disableRemote(self, option: bytes) -> None:
        pass

    # -- the parser

    def dataReceived(self, data: bytes) -> None:
        app: list[bytes] = []  # application data not yet passed up
        i, n = 0, len(data)
        while i < n:
            state = self._state
            if state is _DATA:
                match = _SPECIAL.search(data, i)
                if match is None:
                    app.append(data[i:])
                    break
                j = match.start()
                if j > i:
                    app.append(data[i:j])
                i = j + 1
                if data[j] == 0x0D:
                    app.append(b"\n")
                    self._state = _CR
                else:
                    self._state = _IAC
            elif state is _CR:
                self._state = _DATA
                if data[i] in (0x0A, 0x00):  # the LF or NUL that belongs to the CR
                    i += 1
            elif state is _IAC:
                byte = data[i : i + 1]
                i += 1
                self._state = _DATA
                if byte == IAC:
                    app.append(IAC)
                elif byte in (WILL, WONT, DO, DONT):
                    self._verb = byte
                    self._state = _OPTION
                elif byte == SB:
                    self._subnegotiation.clear()
                    self._subnegotiation_overflowed = False
                    self._state = _SB
                elif byte == EC:  # telnet's own "erase character"
                    app.append(b"\b")
                else:  # NOP, AYT, GA, BRK, an unknown byte...: nothing to do
                    self._pass_up(app)
                    self.commandReceived(byte, None)
            elif state is _OPTION:
                option = data[i : i + 1]
                i += 1
                self._state = _DATA
                self._pass_up(app)  # data before a negotiation is handled before it
                self.commandReceived(self._verb, option)
            elif state is _SB:
                j = data.find(IAC, i)
                end = n if j < 0 else j
                self._collect_subnegotiation(data[i:end])
                if j < 0:
                    break
                i = j + 1
                self._state = _SB_IAC
            else:  # _SB_IAC
                byte = data[i : i + 1]
                i += 1
                if byte == SE:
                    self._state = _DATA
                    self._pass_up(app)
                    self._end_subnegotiation()
                else:  # IAC IAC is a data byte 0xFF; anything else is kept as is
                    self._collect_subnegotiation(byte)
                    self._state = _SB
        self._pass_up(app)

    def _pass_up(self, app: list[bytes]) -> None:
        if app:
            data = b"".join(app)
            app.clear()
            self.applicationDataReceived(data)

    def _collect_subnegotiation(self, data: bytes) -> None:
        if self._subnegotiation_overflowed:
            return
        if len(self._subnegotiation) + len(data) > MAX_SUBNEGOTIATION_BYTES:
            self._subnegotiation_overflowed = True
            self._subnegotiation.clear()
            log.warn(
                "discarding a telnet subnegotiation over {limit} bytes from {peer}",
                limit=MAX_SUBNEGOTIATION_BYTES,
                peer=self.transport.getPeer() if self.transport else None,
            )
            return
        self._subnegotiation += data

    def _end_subnegotiation(self) -> None:
        if self._subnegotiation and not self._subnegotiation_overflowed:
            # Twisted's negotiate() takes a list of one-byte strings.
            self.negotiate([bytes((b,)) for b in self._subnegotiation])
        self._subnegotiation.clear()
