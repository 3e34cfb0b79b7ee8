"""
Crowds: above --quiet-joins members a channel does not announce each join
and leave; every CROWD_SUMMARY_SECONDS one `Crowd` event sums them up (how
many came and went, who of them is in now and who is gone).  The log is
summed up the same way: past LOGIN_LINES_PER_PERIOD logins (or departures)
a period, one line counts the rest.  Pure: time comes from an injected clock.
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from chatd.core.channel import Channel, Member, Remote
from chatd.core.events import Crowd as CrowdEvent
from chatd.core.events import Event, Joined
from chatd.core.fanout import FanOut
from chatd.core.roster import Roster
from chatd.core.session import ISession

log = Logger()

DEFAULT_QUIET_JOINS = 50
CROWD_SUMMARY_SECONDS = 5.0
# Logins (and departures) logged one line each per summary period; past
# that, the period's summary counts the rest (a login storm of thousands,
# or everyone leaving as a network fails, is a few lines).
LOGIN_LINES_PER_PERIOD = 50
_COMINGS_AND_GOINGS = ("joined", "left")


class Crowd:
    """Joins and leaves in big channels, and logins and departures in the log, summed up every few seconds."""

    def __init__(self, clock: IReactorTime, roster: Roster, fan_out: FanOut, quiet_joins: int,
                 default_channel: str) -> None:
        self._clock = clock
        self._roster = roster
        self._fan_out = fan_out
        self.quiet_joins = quiet_joins
        self._default_channel = default_channel
        self._call: IDelayedCall | None = None
        # Logins ("joined") and departures ("left") this summary period:
        # how many were logged one by one, and how many only counted.
        self._logged = dict.fromkeys(_COMINGS_AND_GOINGS, 0)
        self._counted = dict.fromkeys(_COMINGS_AND_GOINGS, 0)

    def logged_in(self, nick: str, address: str) -> None:
        """A login, for the log: a line of its own, or counted in the period's summary."""
        self._log_or_count("joined", "{nick} joined ({count} online) from {address}", nick=nick,
                           count=len(self._roster.members), address=address)

    def departed(self, nick: str, reason: str) -> None:
        """A logged-in user left the chat, for the log: a line of its own, or counted in the period's summary."""
        self._log_or_count("left", "{nick} left ({reason})", nick=nick, reason=reason)

    def announce_join(self, member: Member, channel: Channel, account: str) -> None:
        """`member` (identified for `account`, or "") joined `channel`: announced, or counted if the channel is big."""
        event = Joined(channel.name, member.nick, channel.count, channel.rank_of(member.session), member.away,
                       account, member.realname, at=self._clock.seconds())
        if channel.count > self.quiet_joins:
            self._quiet_join(channel, member.session, member.nick)
            self._fan_out.broadcast(event, frozenset())
        else:
            self._fan_out.broadcast(event, channel.comings, member.session)

    def remote_joined(self, remote: Remote, channel: Channel, event: Joined) -> None:
        """A user of another node joined `channel`: announced, or counted if the channel is big."""
        if channel.count > self.quiet_joins:
            self._quiet_join(channel, remote, remote.nick)
            self._fan_out.record(event, None)
        else:
            self._fan_out.broadcast(event, channel.comings)

    def is_loud(self, channel: Channel) -> bool:
        """Whether a leave of `channel` now is announced one by one (asked before the member is taken out)."""
        return channel.count <= self.quiet_joins

    def left(self, channel: Channel, who: ISession | Remote, nick: str, loud: bool) -> bool:
        """
        `who` (as `nick`) has left `channel`: counted if that is not
        announced, and the channel closed if it is empty; True if its
        members are to be told one by one.
        """
        if not loud:
            channel.quiet_leaves += 1
            channel.note_turnover(who, nick)
            self._later()
        if self.close_if_empty(channel):
            return False
        return loud

    def close_if_empty(self, channel: Channel) -> bool:
        """A channel nobody is in (but the default one) goes; True if it went."""
        return self._roster.close_if_empty(channel, self._default_channel)

    def stop(self) -> None:
        """Shutting down: no summary is left waiting, and the log counts every login and departure."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._log_uncounted()

    def _quiet_join(self, channel: Channel, who: ISession | Remote, nick: str) -> None:
        channel.quiet_joins += 1
        channel.note_turnover(who, nick)
        self._later()

    def _later(self) -> None:
        if self._call is None:
            self._call = self._clock.callLater(CROWD_SUMMARY_SECONDS, self._summarise)

    def _summarise(self) -> None:
        """One line per busy channel for the joins and leaves not announced one by one; the same for the log."""
        self._call = None
        self._log_uncounted()
        for channel in list(self._roster.channels.values()):
            if channel.quiet_joins or channel.quiet_leaves:
                joined, left = channel.quiet_joins, channel.quiet_leaves
                # Of those who came or went: who is in now (by their nickname
                # now), and every name they came or went by that no member has now.
                joiners = tuple(nick for who in channel.turnover if (nick := channel.nick_of(who)) is not None)
                present = set(channel.nicks())
                leavers = tuple(sorted((set(channel.turnover.values()) | channel.turnover_names) - present))
                channel.quiet_joins = channel.quiet_leaves = 0
                channel.turnover, channel.turnover_names = {}, set()
                summary: Event = CrowdEvent(channel.name, joined, left, channel.count, joiners, leavers,
                                            at=self._clock.seconds())
                self._fan_out.broadcast(summary, channel.comings)

    def _log_or_count(self, what: str, line: str, **fields: object) -> None:
        if self._logged[what] < LOGIN_LINES_PER_PERIOD:
            self._logged[what] += 1
            log.info(line, **fields)
        else:
            self._counted[what] += 1
        self._later()

    def _log_uncounted(self) -> None:
        for what in _COMINGS_AND_GOINGS:
            count = self._counted[what]
            if count:
                log.info("{more} {what} ({online} online)", more=f"{count} more user{'' if count == 1 else 's'}",
                         what=what, online=len(self._roster.members))
            self._logged[what] = self._counted[what] = 0
