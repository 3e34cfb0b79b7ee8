"""
Step 6 of the data path: the room.  Who is here, the chat rules, fan-out.

The room never sees a transport: it reaches each connection through
`IMember` (deliver some lines, disconnect), so it can be tested with fakes and
later shared across processes.  It is driven by three calls from a
connection: `arrive`, `handle(command)` and `depart`.

Fan-out is the hot path: one line in, a line out to every member.  While
the room is held (chatd holds it from the first line of a reactor turn to
the turn's end), public messages are rendered at once but delivered
together on `release`: each member gets one delivery holding all of them
(a `wire.Share`), so the work per member is per turn, not per message.
Anything else delivered to a member (a reply, a private message, their
departure) first catches that member up with what waits for them, and a
member who joins mid-turn gets only what comes after, so each member sees
everything in the order it happened, and no one's join or leave costs a
delivery to everyone.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable

from attrs import Factory, define, field
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from chatd.telnet import parse as commands
from chatd.telnet import render
from chatd.core.history import History
from chatd.core.moderation import Moderation
from chatd.telnet.render import Acted, Event, Joined, Left, Renamed, Said
from chatd.core.text import NicknameError, check_nickname, nickname_key, nickname_skeletons
from chatd.core.wire import Batch, Outgoing, Share

log = Logger()

RENAMES_PER_WINDOW = 3
RENAME_WINDOW_SECONDS = 60.0


class IMember(Interface):
    """A connection as the room sees it."""

    address = Attribute("The address the connection comes from, as a string (for bans).")

    def deliver(outgoing: Outgoing | Share) -> None:
        """Send these lines to the user.  Must not block."""

    def disconnect(reason: str) -> None:
        """Close the connection once what was delivered has been sent."""


@define
class Room:
    """The one chat room of a chatd server."""

    server_name: str
    clock: IReactorTime
    history: History = field(factory=lambda: History(0))
    # Called with (unix time, event) for every public event: the transcript.
    observers: list[Callable[[float, Event], None]] = field(factory=list)
    moderation: Moderation | None = None  # None: no --oper-password-file
    # Every connection that arrived and has not departed, joined or not.
    _present: set[IMember] = field(init=False, default=Factory(set))
    # Members who have chosen a nickname, in order of joining.
    _nick_of: dict[IMember, str] = field(init=False, default=Factory(dict))
    _member_by_key: dict[str, IMember] = field(init=False, default=Factory(dict))
    # By TR39 skeletons, so no one can take a nickname that looks like another's.
    _member_by_skeleton: dict[str, IMember] = field(init=False, default=Factory(dict))
    # When each member last renamed (the most recent RENAMES_PER_WINDOW times).
    _renamed_at: dict[IMember, list[float]] = field(init=False, default=Factory(dict))
    # Public messages waiting to be delivered, rendered, each with the member it is not for (its sender).
    _pending: list[tuple[str, IMember | None]] = field(init=False, default=Factory(list))
    # Members whose share of _pending starts later than its start: joined or caught up since.
    _caught_up: dict[IMember, int] = field(init=False, default=Factory(dict))
    held: bool = field(init=False, default=False)
    # While delivering, what a dropped member's leaving adds waits for the next round.
    _publishing: bool = field(init=False, default=False)

    # -- queries

    @property
    def count(self) -> int:
        """How many users have chosen a nickname."""
        return len(self._nick_of)

    def nicks(self) -> list[str]:
        return list(self._nick_of.values())

    def nick_of(self, member: IMember) -> str | None:
        return self._nick_of.get(member)

    # -- from a connection

    def arrive(self, member: IMember) -> None:
        """A new connection: greet it and ask for a nickname."""
        self._present.add(member)
        member.deliver(Outgoing((render.welcome(self.server_name, self.count), render.choose_nickname())))

    def handle(self, member: IMember, command: commands.Command) -> None:
        """Carry out one command from `member`."""
        nick = self._nick_of.get(member)
        if nick is None:
            self._handle_before_joining(member, command)
        else:
            self._handle_joined(member, nick, command)

    def depart(self, member: IMember, reason: str) -> None:
        """The connection is gone (or going); it may never have joined."""
        self.catch_up(member)
        self._present.discard(member)
        if self.moderation is not None:
            self.moderation.forget(member)
        nick = self._nick_of.pop(member, None)
        if nick is None:
            return
        self._unregister(nick)
        self._renamed_at.pop(member, None)
        log.info("{nick} left ({reason})", nick=nick, reason=reason)
        self._broadcast(Left(nick, reason))

    # -- the rules

    def _handle_before_joining(self, member: IMember, command: commands.Command) -> None:
        match command:
            case commands.Say(text) | commands.Nick(text):
                self._join(member, text)
            case commands.Quit():
                self._bye(member)
            case commands.List():
                self._reply(member, render.user_list(self.nicks()), render.choose_nickname())
            case commands.Help():
                self._reply(member, *render.help_lines(self.moderation is not None), render.choose_nickname())
            case commands.Invalid(reason):
                self._reply(member, render.error(reason), render.choose_nickname())
            case _:
                self._reply(member, render.error("choose a nickname first"), render.choose_nickname())

    def _handle_joined(self, member: IMember, nick: str, command: commands.Command) -> None:
        match command:
            case commands.Say(text):
                self._broadcast(Said(nick, text), exclude=member)
            case commands.Act(text):
                self._broadcast(Acted(nick, text), exclude=member)
            case commands.Msg(to_nick, text):
                self._private(member, nick, to_nick, text)
            case commands.List():
                self._reply(member, render.user_list(self.nicks()))
            case commands.Nick(new_nick):
                self._rename(member, nick, new_nick)
            case commands.Quit(reason):
                self.depart(member, reason)
                self._bye(member)
            case commands.Help():
                self._reply(member, *render.help_lines(self.moderation is not None))
            case commands.Invalid(reason):
                self._reply(member, render.error(reason))
            case commands.Oper() | commands.Kick() | commands.Ban() | commands.Unban() | commands.Bans():
                self._moderate(member, nick, command)
            case _:
                raise TypeError(f"the room does not handle {command!r}")

    def _moderate(self, member: IMember, nick: str, command: commands.Command) -> None:
        moderation = self.moderation
        if moderation is None:
            self._reply(member, render.error("moderation is off on this server"))
            return
        if isinstance(command, commands.Oper):
            refusal = moderation.try_password(member, member.address, command.password)
            if refusal is None:
                log.info("{nick} from {address} is now an operator", nick=nick, address=member.address)
                self._reply(member, render.operator_now())
            else:
                log.warn("failed /oper by {nick} from {address}", nick=nick, address=member.address)
                self._reply(member, render.error(refusal))
            return
        if not moderation.is_operator(member):
            self._reply(member, render.error("you are not an operator"))
            return
        match command:
            case commands.Kick(target_nick, reason):
                target = self._member_by_key.get(nickname_key(target_nick))
                if target is None:
                    self._reply(member, render.error(f"no such nick: {target_nick}"))
                    return
                log.info("{nick} kicked {target}", nick=nick, target=self._nick_of[target])
                self._remove(target, render.kicked(nick, reason), render.kick_reason(nick, reason))
            case commands.Ban(target, minutes):
                self._ban(member, nick, target, minutes, moderation)
            case commands.Unban(address):
                if moderation.unban(address):
                    self._reply(member, render.unbanned(address))
                else:
                    self._reply(member, render.error(f"not banned: {address}"))
            case commands.Bans():
                self._reply(member, render.bans(moderation.bans()))

    def _ban(self, member: IMember, nick: str, target: str, minutes: float, moderation: Moderation) -> None:
        holder = self._member_by_key.get(nickname_key(target))
        if holder is not None:
            address = holder.address
        else:
            try:
                address = str(ipaddress.ip_address(target))
            except ValueError:
                self._reply(member, render.error(f"no such nick or address: {target}"))
                return
        if address == member.address:
            self._reply(member, render.error("that is your own address"))
            return
        moderation.ban(address, minutes)
        log.info("{nick} banned {address} ({minutes:g} minutes)", nick=nick, address=address, minutes=minutes)
        self._reply(member, render.banned(address, minutes))
        for present in [present for present in self._present if present.address == address]:
            self._remove(present, render.error("you are banned from this server"), f"Banned by {nick}")

    def _remove(self, member: IMember, notice: str, reason: str) -> None:
        """Take `member` out of the room: the others see `reason`; `member` gets `notice` and is disconnected."""
        self.depart(member, reason)
        self._deliver_isolated(member, Outgoing.line(notice))
        member.disconnect(reason)

    def _join(self, member: IMember, wanted: str) -> None:
        try:
            nick = self._available_nickname(wanted, member)
        except NicknameError as refusal:
            self._reply(member, render.error(str(refusal)), render.choose_nickname())
            return
        self._register(member, nick)
        self._caught_up[member] = len(self._pending)  # what was said before they joined is not for them
        log.info("{nick} joined ({count} online)", nick=nick, count=self.count)
        self._reply(member, render.hello(nick), *self.history.lines())
        self._broadcast(Joined(nick, self.count), exclude=member)

    def _rename(self, member: IMember, old: str, wanted: str) -> None:
        try:
            new = self._available_nickname(wanted, member)
        except NicknameError as refusal:
            self._reply(member, render.error(str(refusal)))
            return
        if new == old:
            self._reply(member, render.error(f"you are already {old}"))
            return
        now = self.clock.seconds()
        recent = [at for at in self._renamed_at.get(member, ()) if now - at < RENAME_WINDOW_SECONDS]
        if len(recent) >= RENAMES_PER_WINDOW:
            wait = math.ceil(recent[0] + RENAME_WINDOW_SECONDS - now)
            self._reply(member, render.error(f"too many nickname changes, wait {wait} s"))
            return
        self._renamed_at[member] = [*recent, now]
        self._unregister(old)
        self._register(member, new)
        log.info("{old} is now {new}", old=old, new=new)
        self._broadcast(Renamed(old, new))

    def _available_nickname(self, wanted: str, member: IMember) -> str:
        nick = check_nickname(wanted)
        holder = self._member_by_key.get(nickname_key(nick))
        if holder is not None and holder is not member:
            raise NicknameError(f"nickname is taken: {nick}")
        for skeleton in nickname_skeletons(nick):
            look_alike = self._member_by_skeleton.get(skeleton)
            if look_alike is not None and look_alike is not member:
                raise NicknameError(f"nickname is taken: {nick} (it looks like {self._nick_of[look_alike]})")
        return nick

    def _register(self, member: IMember, nick: str) -> None:
        self._nick_of[member] = nick
        self._member_by_key[nickname_key(nick)] = member
        for skeleton in nickname_skeletons(nick):
            self._member_by_skeleton[skeleton] = member

    def _unregister(self, nick: str) -> None:
        """Free `nick` and its look-alikes (the member stays in _nick_of for the caller to update)."""
        del self._member_by_key[nickname_key(nick)]
        for skeleton in nickname_skeletons(nick):
            del self._member_by_skeleton[skeleton]

    def _private(self, member: IMember, nick: str, to_nick: str, text: str) -> None:
        recipient = self._member_by_key.get(nickname_key(to_nick))
        if recipient is None:
            self._reply(member, render.error(f"no such nick: {to_nick}"))
            return
        recipient_nick = self._nick_of[recipient]
        self.catch_up(recipient)
        self._deliver_isolated(recipient, Outgoing.line(render.private_to_recipient(nick, text)))
        self._reply(member, render.private_to_sender(recipient_nick, text))

    def _bye(self, member: IMember) -> None:
        self._reply(member, render.bye())
        member.disconnect("quit")

    # -- fan-out

    def hold(self) -> None:
        """Keep public messages waiting until `release`."""
        self.held = True

    def release(self) -> None:
        """Stop holding, and deliver what waits."""
        self.held = False
        self._publish()

    def _publish(self) -> None:
        """Deliver the public messages that are waiting, each member's in one delivery."""
        if self._publishing:
            return  # the loop below gets to what was added meanwhile
        self._publishing = True
        try:
            while self._pending:
                pending, caught_up = self._pending, self._caught_up
                self._pending, self._caught_up = [], {}
                self._fan_out(pending, caught_up)
        finally:
            self._publishing = False

    def catch_up(self, member: IMember) -> None:
        """Deliver to `member` now what waits for them, so what comes next reaches them in order."""
        if member not in self._nick_of:
            return
        start, end = self._caught_up.get(member, 0), len(self._pending)
        if start < end:
            self._caught_up[member] = end  # first: a failing delivery drops the member, who is then caught up
            sent = [index for index in range(start, end) if self._pending[index][1] is member]
            runs = _runs_between(start, sent, end)
            if runs:
                self._deliver_isolated(member, Batch([line for line, _ in self._pending]).share(runs))

    def _reply(self, member: IMember, *lines: str) -> None:
        """Lines for the member whose command is being handled."""
        self.catch_up(member)
        member.deliver(Outgoing(lines))

    def _broadcast(self, happened: Event, exclude: IMember | None = None) -> None:
        """Record `happened`, render it once and deliver it to every member but `exclude`."""
        self._record(happened)
        self._pending.append((render.event(happened), exclude))
        if not self.held:
            self._publish()

    def _fan_out(self, pending: list[tuple[str, IMember | None]], caught_up: dict[IMember, int]) -> None:
        batch = Batch([line for line, _ in pending])
        everyone = batch.share([(0, len(batch))])
        sent_by: dict[IMember, list[int]] = {}
        for index, (_, sender) in enumerate(pending):
            if sender is not None:
                sent_by.setdefault(sender, []).append(index)
        for member in list(self._nick_of):
            # A member dropped by a failed delivery earlier in this loop is skipped.
            if member not in self._nick_of:
                continue
            start = caught_up.get(member, 0)
            if not start and member not in sent_by:
                self._deliver_isolated(member, everyone)
                continue
            runs = _runs_between(start, sent_by.get(member, []), len(batch))
            if runs:
                self._deliver_isolated(member, batch.share(runs))

    def _record(self, happened: Event) -> None:
        now = self.clock.seconds()
        self.history.record(now, happened)
        for observer in self.observers:
            try:
                observer(now, happened)
            except Exception:
                log.failure("recording {event} failed", event=happened)

    def _deliver_isolated(self, member: IMember, outgoing: Outgoing | Share) -> None:
        """
        Deliver to a member other than the one whose command is being handled:
        if that fails, the failure is that member's alone, so it is logged and
        that member dropped, and the caller goes on with the others.
        """
        try:
            member.deliver(outgoing)
        except Exception:
            log.failure("delivery to {nick} failed; dropping the connection", nick=self._nick_of.get(member))
            self._drop(member)

    def _drop(self, member: IMember) -> None:
        try:
            member.disconnect("delivery failed")
        except Exception:
            log.failure("disconnecting {nick} failed", nick=self._nick_of.get(member))
        self.depart(member, "Connection lost")


def _runs_between(start: int, skipped: list[int], end: int) -> list[tuple[int, int]]:
    """The [from, to) runs of start..end that leave out the (ascending) indices in `skipped`."""
    runs = []
    for index in skipped:
        if index > start:
            runs.append((start, index))
        start = max(start, index + 1)
    if start < end:
        runs.append((start, end))
    return runs
