"""
One connection to Redis, made again whenever it is lost: the bus has two,
one for commands and one for the stream reader's blocking XREAD.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import txredisapi
from OpenSSL import SSL
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.python.failure import Failure

from chatd.bus.address import RedisAddress
from chatd.net.twisted_private import when_lost, write_out


def _no_delay(transport: Any) -> None:
    """
    Send each command at once (TCP_NODELAY, as Redis does its replies): a
    turn's entry goes out while the one before is unanswered, and Nagle's
    algorithm would hold it until then.  Through TLS, on the TCP transport below.
    """
    while transport is not None:
        set_no_delay = getattr(transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
            return
        transport = getattr(transport, "transport", None)


def _why(reason: Failure) -> str:
    """Why a connection was lost, in a few words: OpenSSL's last reason for a TLS failure."""
    error = reason.value
    if isinstance(error, SSL.Error) and error.args and isinstance(error.args[0], list) and error.args[0]:
        return f"TLS: {error.args[0][-1][-1]}"
    return reason.getErrorMessage()


class Link(txredisapi.RedisFactory):  # type: ignore[misc]
    """
    One connection to Redis, made again whenever it is lost (txredisapi's
    RedisFactory.startConnecting, on Twisted's ClientService).  Tells its
    owner when it is ready and when it is lost.

    The password and the database are sent here, not by txredisapi: when
    its AUTH or SELECT gets no answer in time (a Redis that is stopped
    accepts connections and answers nothing), txredisapi stops
    reconnecting for good.  Here only Redis's own refusal stops it.
    """

    initialDelay = 0.5
    maxDelay = 2.0

    def __init__(self, address: RedisAddress, reply_timeout: float, up: Callable[[], None],
                 down: Callable[[str], None], refused: Callable[[str], None], failed: Callable[[str], None]) -> None:
        super().__init__(None, None, 1, replyTimeout=reply_timeout, convertNumbers=False)
        self.address = address
        self.connection: Any = None
        self.last_loss = "the connection was closed"
        self._up, self._down, self._refused, self._failed = up, down, refused, failed

    def buildProtocol(self, address: Any) -> Any:
        """txredisapi's protocol, which tells why it was lost if that happened before it was ready (TLS refused)."""
        protocol = super().buildProtocol(address)

        def lost(reason: Failure) -> None:
            # A plain close or an abort (a reply timeout) says nothing more than that it closed.
            plain = reason.check(ConnectionDone, ConnectionLost, ConnectionAborted)
            self.last_loss = "the connection was closed" if plain else _why(reason)
            if protocol is not self.connection:  # never ready: the bus never hears of it otherwise
                self._failed(self.last_loss)

        when_lost(protocol, lost)
        return protocol

    def addConnection(self, connection: Any) -> None:
        super().addConnection(connection)
        if connection in self.pool:
            _no_delay(connection.transport)
            self._let_in(connection).addErrback(self._not_let_in, connection)

    @inlineCallbacks
    def _let_in(self, connection: Any) -> Any:
        address = self.address
        if address.password is not None:
            if address.username:
                yield connection.execute_command("AUTH", address.username, address.password)
            else:
                yield connection.execute_command("AUTH", address.password)
        if address.db:
            yield connection.execute_command("SELECT", address.db)
        if connection in self.pool:
            self.connection = connection
            self._up()

    def _not_let_in(self, failure: Failure, connection: Any) -> None:
        if failure.check(txredisapi.ResponseError):  # Redis said no: trying again would not help
            self.stopTrying()
            self._refused(failure.getErrorMessage())
        if connection.transport is not None:
            connection.transport.abortConnection()

    def delConnection(self, connection: Any) -> None:
        super().delConnection(connection)
        if connection is self.connection:
            self.connection = None
            self._down(self.last_loss)

    def command(self, *args: Any) -> Deferred[Any]:
        if self.connection is None:
            raise txredisapi.ConnectionError("not connected")
        result: Deferred[Any] = self.connection.execute_command(*args)
        return result

    def abort(self) -> None:
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.abortConnection()

    def send_now(self) -> None:
        """Hand the commands just given to the kernel now, not at the end of the reactor turn."""
        if self.connection is not None:
            write_out(self.connection.transport)
