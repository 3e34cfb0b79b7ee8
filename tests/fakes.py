"""Fakes and helpers the unit tests share: one place, imported by the test modules that need them."""

from __future__ import annotations

from chatd.core.server import ChatServer
from chatd.core.session import ISession
from chatd.telnet.protocol import greeting


def greet(server: ChatServer, session: ISession) -> None:
    """A new session arrives and is welcomed and asked for a nickname, as a telnet connection is."""
    server.arrive(session)
    server.tell(session, *greeting(server))


def current_channel(server: ChatServer, session: ISession) -> str | None:
    """The channel `session` talks in now (None: in none), as the server keeps it (the server does not say)."""
    member = server._roster.members.get(session)
    return None if member is None or member.current is None else member.current.name


def sessions_in(server: ChatServer, channel: str) -> list[ISession]:
    """The sessions of this node in `channel` (none if there is no such channel), as the server keeps them."""
    found = server._roster.channel(channel)
    return [] if found is None else list(found.members)
