"""
Step 2 of the data path: bytes from the socket -> application bytes.

`TelnetServer` is `twisted.conch.telnet.Telnet` with two things of our own:

- The policy: which options are used.  The server starts no negotiation, so
  `nc` users never see a telnet byte.  A client that negotiates anything has
  shown that it speaks telnet, and is then offered the rest of what makes
  chat work well (once, after the read that showed it):

    ECHO and SGA (server side)  character mode: the server echoes and edits
                                the line, and redraws it when a message
                                arrives, so messages never land inside what
                                the user is typing.  Windows telnet and PuTTY
                                ask for this themselves.
    BINARY, both ways (RFC 856) an 8-bit path.  Linux telnet compares input
                                bytes with its escape character (Ctrl-], 0x1D)
                                without the high bit unless BINARY is on, so
                                the byte 0x9D in the UTF-8 of 李, Н or Ν would
                                drop the user into `telnet>`.
    NAWS, when offered          the window's width, so a redraw clears every
                                row a long partial line wrapped onto.

  Every other option is refused.  Answers follow Twisted's RFC 1143 state
  machine, which never answers in a loop.

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
from typing import Any

from twisted.conch.telnet import (
    DO,
    DONT,
    EC,
    ECHO,
    IAC,
    NAWS,
    NegotiationError,
    SB,
    SE,
    SGA,
    WILL,
    WONT,
    Telnet,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd.net.handshake import speaks_tls

log = Logger()

BINARY = b"\x00"  # RFC 856 (twisted.conch.telnet names the other options, not this one)

MAX_SUBNEGOTIATION_BYTES = 4096

_SPECIAL = re.compile(b"[\r\xff]")

# The first bytes of a connection from a web browser.
_HTTP_REQUEST_LINE = re.compile(rb"(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|CONNECT|PATCH|TRACE) \S+ HTTP/\d")
# What an IRC client sends first: capability negotiation, or registration.
_IRC_REGISTRATION = re.compile(rb"(?:CAP|NICK|USER|PASS) \S")


def wrong_protocol(first_bytes: bytes) -> str | None:
    """"HTTP", "TLS" or "IRC" if a connection's first bytes are that, not telnet; else None."""
    if _HTTP_REQUEST_LINE.match(first_bytes):
        return "HTTP"
    if speaks_tls(first_bytes):
        return "TLS"
    if _IRC_REGISTRATION.match(first_bytes):
        return "IRC"
    return None

# Whether the offers to a client that speaks telnet were made.
_NOT_YET = "not yet"
_DUE = "due"
_MADE = "made"

# Parser states.
_DATA = "data"
_CR = "after CR"
_IAC = "after IAC"
_OPTION = "after WILL/WONT/DO/DONT"
_SB = "in subnegotiation"
_SB_IAC = "after IAC in subnegotiation"


# Never changed: getOptionState gives a connection a dict of its own before Twisted adds to it.
_NO_OPTIONS: dict[bytes, object] = {}


class TelnetServer(Telnet):
    """
    The telnet side of a chat connection.  Subclasses receive application
    bytes in `applicationDataReceived` and hear about echo in `echo_changed`.
    """

    # Twisted's Telnet.__init__ builds two dicts and four bound methods for
    # every connection; with thousands of idle users that adds up, so the
    # commands are dispatched from one table for the class instead.
    _COMMANDS = {WILL: Telnet.telnet_WILL, WONT: Telnet.telnet_WONT, DO: Telnet.telnet_DO, DONT: Telnet.telnet_DONT}
    # In slots, not a __dict__, for the same reason (Protocol's own attributes are the subclass's).
    __slots__ = ("options", "echoing", "_state", "_verb", "_subnegotiation", "_subnegotiation_overflowed", "_offers")

    def __init__(self) -> None:
        # Twisted's state of each option negotiated: the shared empty one until the first (nc negotiates none).
        self.options: dict[bytes, object] = _NO_OPTIONS
        self.echoing = False
        self._state = _DATA
        self._verb = b""
        self._subnegotiation = b""  # bytes, not a bytearray of its own: most clients never send IAC SB
        self._subnegotiation_overflowed = False
        self._offers = _NOT_YET

    def getOptionState(self, opt: bytes) -> Any:
        """Twisted's, on a dict of this connection's own from the first option negotiated."""
        if self.options is _NO_OPTIONS:
            self.options = {}
        return super().getOptionState(opt)

    def echo_changed(self, echoing: bool) -> None:
        """The client turned server-side echo on or off."""

    def window_size_changed(self, columns: int, rows: int) -> None:
        """The client said how big its window is (NAWS)."""

    def commandReceived(self, command: bytes, argument: bytes | None) -> None:
        handler = self._COMMANDS.get(command)
        if handler is None:
            self.unhandledCommand(command, argument)
        else:
            handler(self, argument)
            if self._offers is _NOT_YET:
                self._offers = _DUE

    # -- option policy (called by Twisted's negotiation state machine)

    def enableLocal(self, option: bytes) -> bool:
        if option == ECHO:
            self.echoing = True
            self.echo_changed(True)
            return True
        return option in (SGA, BINARY)

    def disableLocal(self, option: bytes) -> None:
        if option == ECHO:
            self.echoing = False
            self.echo_changed(False)

    def enableRemote(self, option: bytes) -> bool:
        return option in (SGA, BINARY, NAWS)

    def disableRemote(self, option: bytes) -> None:
        pass

    def _make_offers(self) -> None:
        """Offer a client that speaks telnet what it has not settled yet (see the module docstring)."""
        self._offers = _MADE

        def ignore(failure: Failure) -> None:
            """An offer fails at once for an option already settled or being settled, later if refused: fine."""

        self.will(ECHO).addErrback(ignore)
        self.will(SGA).addErrback(ignore)
        def offer_ours(answer: object) -> None:
            if isinstance(answer, Failure) and not answer.check(NegotiationError):
                return  # no answer: the connection went
            self.will(BINARY).addErrback(ignore)

        # The client's side of BINARY first: that is what Linux telnet's
        # escape check depends on.  Twisted settles one direction of an
        # option at a time, so ours follows the client's answer.
        self.do(BINARY).addBoth(offer_ours)

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
                    self._subnegotiation = b""
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
        if self._offers is _DUE:
            self._make_offers()

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
            self._subnegotiation = b""
            log.warn(
                "discarding a telnet subnegotiation over {limit} bytes from {peer}",
                limit=MAX_SUBNEGOTIATION_BYTES,
                peer=self.transport.getPeer() if self.transport else None,
            )
            return
        self._subnegotiation += data

    def _end_subnegotiation(self) -> None:
        data, self._subnegotiation = self._subnegotiation, b""
        if self._subnegotiation_overflowed:
            return
        # NAWS: width and height, two bytes each; 0 means unknown.
        if data[:1] == NAWS and len(data) == 5 and self.getOptionState(NAWS).him.state == "yes":
            columns, rows = int.from_bytes(data[1:3], "big"), int.from_bytes(data[3:5], "big")
            if columns:
                self.window_size_changed(columns, rows)
