"""Fakes and helpers the unit tests share: one place, imported by the test modules that need them."""

from __future__ import annotations

from chatd.core.server import ChatServer
from chatd.core.session import ISession
from chatd.telnet.protocol import greeting


def greet(server: ChatServer, session: ISession) -> None:
    """A new session arrives and is welcomed and asked for a nickname, as a telnet connection is."""
    server.arrive(session)
    server.tell(session, *greeting(server))
