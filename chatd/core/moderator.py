"""
Moderation's commands: /oper, /kick, /ban, /unban and /bans, as the server
carries them out for a member (the state they change, operators and bans,
is chatd.core.moderation's).  Pure.

In a cluster, a user of another node is kicked or banned by their own
node, which knows their address: this node sends the order on the bus.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from chatd.core import commands, replies
from chatd.core.channel import Member, Remote
from chatd.core.events import Banned, KickOrdered, Unbanned
from chatd.core.fanout import FanOut
from chatd.core.moderation import Moderation
from chatd.core.roster import Roster
from chatd.core.session import ISession

log = Logger()

Remove = Callable[[ISession, object, str], None]


def kicked_by(by: str, reason: str) -> str:
    """Why a kicked user left, as the others read it."""
    return f"Kicked by {by}" + (f": {reason}" if reason else "")


def ban_address(roster: Roster, moderation: Moderation, remove: Remove, address: str, minutes: float,
                by: str) -> None:
    """Ban `address`, and take out every session from it."""
    moderation.ban(address, minutes)
    for present in [present for present in roster.present if present.address == address]:
        remove(present, replies.Error("you are banned from this server", "banned"), f"Banned by {by}")


class Moderator:
    """Carries out a member's moderation commands."""

    def __init__(self, clock: IReactorTime, roster: Roster, fan_out: FanOut, moderation: Moderation | None,
                 tell: Callable[..., None], remove: Remove) -> None:
        self._clock = clock
        self._roster = roster
        self._fan_out = fan_out
        self._moderation = moderation
        self._tell = tell  # replies to the member whose command this is
        self._remove = remove  # a session taken out: it reads a notice, the others a reason

    def carry_out(self, member: Member, command: commands.Command) -> None:
        session, nick, moderation = member.session, member.nick, self._moderation
        if moderation is None:
            self._tell(session, replies.Error("moderation is off on this server", "no-moderation"))
            return
        if isinstance(command, commands.Oper):
            refusal = moderation.try_password(session, session.address, command.password)
            if refusal is None:
                log.info("{nick} from {address} is now an operator", nick=nick, address=session.address)
                self._tell(session, replies.OperatorNow())
            else:
                log.warn("failed /oper by {nick} from {address}", nick=nick, address=session.address)
                self._tell(session, replies.Error(refusal, "wrong-password"))
            return
        if not moderation.is_operator(session):
            self._tell(session, replies.Error("you are not an operator", "not-operator"))
            return
        match command:
            case commands.Kick(target, reason):
                self._kick(member, target, reason)
            case commands.Ban(target, minutes):
                self._ban(member, target, minutes, moderation)
            case commands.Unban(address):
                if moderation.unban(address):
                    self._fan_out.send_on(Unbanned(address, at=self._clock.seconds()))
                    self._tell(session, replies.BanLifted(address))
                else:
                    self._tell(session, replies.Error(f"not banned: {address}", "not-banned", address))
            case commands.Bans():
                self._tell(session, replies.BanList(tuple(moderation.bans())))

    def _kick(self, member: Member, target_nick: str, reason: str) -> None:
        holder = self._roster.nicknames.holder(target_nick)
        if isinstance(holder, Remote):  # their node kicks them
            log.info("{nick} kicked {target}", nick=member.nick, target=holder.nick)
            self._fan_out.send_on(KickOrdered(holder.nick, member.nick, reason, at=self._clock.seconds()))
            return
        target = self._roster.members.get(holder) if holder is not None else None
        if target is None:
            self._tell(member.session, replies.Error(f"no such nick: {target_nick}", "no-such-nick", target_nick))
            return
        log.info("{nick} kicked {target}", nick=member.nick, target=target.nick)
        self._remove(target.session, replies.KickedOut(member.nick, reason), kicked_by(member.nick, reason))

    def _ban(self, member: Member, target: str, minutes: float, moderation: Moderation) -> None:
        session = member.session
        holder = self._roster.nicknames.holder(target)
        if isinstance(holder, Remote):  # their node knows the address, bans it and tells the others
            log.info("{nick} banned {target} ({minutes:g} minutes)", nick=member.nick, target=holder.nick,
                     minutes=minutes)
            self._fan_out.send_on(Banned(holder.nick, minutes, member.nick, at=self._clock.seconds()))
            self._tell(session, replies.BanAdded(holder.nick, minutes))
            return
        if holder is not None:
            address = holder.address
        else:
            try:
                address = str(ipaddress.ip_address(target))
            except ValueError:
                self._tell(session, replies.Error(f"no such nick or address: {target}", "no-such-nick", target))
                return
        if address == session.address:
            self._tell(session, replies.Error("that is your own address", "own-address", target))
            return
        log.info("{nick} banned {address} ({minutes:g} minutes)", nick=member.nick, address=address, minutes=minutes)
        self._fan_out.send_on(Banned(address, minutes, member.nick, at=self._clock.seconds()))
        self._tell(session, replies.BanAdded(address, minutes))
        ban_address(self._roster, moderation, self._remove, address, minutes, member.nick)
