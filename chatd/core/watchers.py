"""
Who watches whom: nicknames a session asked to hear of (IRC's MONITOR,
what irssi's and HexChat's notify lists and bots use), and the sessions
told when such a nickname comes online or goes.  Pure.

The server calls `online` and `offline` wherever a nickname is taken or
let go (a login, a rename, a departure, another node's user coming or
going); each watcher is told once per change, as a reply.  Of a watched
user's away and real name (`changed`), a watcher hears as a channel-mate
does, if its door asks for that (IRCv3 extended-monitor, see
ISession.hears_watched) and it shares no channel with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chatd.core import replies
from chatd.core.events import Event
from chatd.core.nicknames import name_key
from chatd.core.session import ISession

# The most nicknames one session watches (IRC's MONITOR=).
MAX_WATCHED = 100


class Watchers:
    def __init__(self, tell: Callable[..., None], share: Callable[[ISession, Event, frozenset[str]], None]) -> None:
        self._tell = tell  # a reply to one session, after what waits for it
        # An event to one watcher, unless it reaches them anyway (they are in its audience).
        self._share = share
        self._by_nick: dict[str, set[ISession]] = {}
        self._by_session: dict[ISession, dict[str, str]] = {}  # key -> the nickname as asked

    def watched(self, session: ISession) -> list[str]:
        return list(self._by_session.get(session, {}).values())

    def add(self, session: ISession, nicks: Iterable[str]) -> tuple[list[str], list[str]]:
        """Watch `nicks`: those added, and those past MAX_WATCHED (not added)."""
        mine = self._by_session.setdefault(session, {})
        added, refused = [], []
        for nick in nicks:
            key = name_key(nick)
            if key in mine:
                continue
            if len(mine) >= MAX_WATCHED:
                refused.append(nick)
                continue
            mine[key] = nick
            self._by_nick.setdefault(key, set()).add(session)
            added.append(nick)
        return added, refused

    def remove(self, session: ISession, nicks: Iterable[str] | None = None) -> None:
        """Stop watching `nicks` (None: every one, and forget the session)."""
        mine = self._by_session.get(session, {})
        for key in [name_key(nick) for nick in nicks] if nicks is not None else list(mine):
            if mine.pop(key, None) is not None:
                watching = self._by_nick[key]
                watching.discard(session)
                if not watching:
                    del self._by_nick[key]
        if nicks is None or not mine:
            self._by_session.pop(session, None)

    def online(self, nick: str) -> None:
        for session in list(self._by_nick.get(name_key(nick), ())):
            self._tell(session, replies.WatchedOnline((nick,)))

    def renamed(self, old: str, new: str) -> None:
        """`old` is `new` now: its watchers hear it go, `new`'s hear it come (nothing for a change of case)."""
        if name_key(old) != name_key(new):
            self.offline(old)
            self.online(new)

    def changed(self, nick: str, event: Event, audience: frozenset[str]) -> None:
        """`nick`'s away or real name changed (`event`, for the channels `audience`): its watchers hear of it."""
        for session in list(self._by_nick.get(name_key(nick), ())):
            if session.hears_watched:
                self._share(session, event, audience)

    def offline(self, nick: str) -> None:
        for session in list(self._by_nick.get(name_key(nick), ())):
            self._tell(session, replies.WatchedOffline((nick,)))
