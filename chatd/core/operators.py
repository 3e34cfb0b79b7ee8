"""
Channel operators' rules: who may change a channel's modes (chatd.core.modes),
put someone out of it (`KickFrom`) and invite someone in; and what the
modes let through (a join past +b, +i, +k and +l; a line past +m and +b;
a topic past +t).  Pure.

A channel's operators (`@`) are whoever made it, its founder's account
whenever it joins, and whoever an operator makes one; a chatd server
operator (/oper) may do what a channel operator may, in any channel.

In a cluster every node applies every node's `ModeChanged` and `Kicked`
(`apply_change`, `put_out`), so modes, ranks and members are the same
everywhere; an invitation goes to the invited user's node (`InviteSent`),
which is the one that checks their joins.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from chatd.core import replies
from chatd.core.channel import Channel, Member, Remote
from chatd.core.crowd import Crowd
from chatd.core.events import Invited, InviteSent, Kicked, ModeChanged
from chatd.core.fanout import FanOut
from chatd.core.moderation import Moderation
from chatd.core.modes import (
    FLAGS,
    LISTS,
    MAX_KEY_CHARS,
    MAX_MASKS,
    RANKS,
    SHOWN_HOST,
    Change,
    MaskEntry,
    full_mask,
    read_mode_words,
    user_masks,
)
from chatd.core.nicknames import name_key
from chatd.core.text import clean
from chatd.core.roster import Roster
from chatd.core.session import ISession

log = Logger()

Who = ISession | Remote

# The longest argument of a mode change (a mask), and the most invitations a channel holds at once.
MAX_ARGUMENT_CHARS = 200
MAX_INVITED = 1000


def masks_of(member: Member) -> tuple[str, ...]:
    """How bans see a user of this node: by the host IRC shows and by their address."""
    session = member.session
    return user_masks(member.nick, session.username or member.nick, (SHOWN_HOST, session.address))


def apply_change(roster: Roster, channel: Channel, change: Change, by: str, at: float) -> Change | replies.Error:
    """
    Make one change to `channel` (no question of who may): the change as
    it is announced (a nickname as its user has it, a mask in full), the
    Error that refuses it, or ("", "") if it changes nothing.
    """
    sign, letter = change[0][0], change[0][1]
    on, argument, modes = sign == "+", change[1], channel.modes
    nothing = ("", "")
    if argument != clean(argument) or len(argument) > MAX_ARGUMENT_CHARS:  # shown to every member: text, and short
        return replies.Error("a mode's argument is one short word of text", "bad-mode-argument", channel.name,
                             (letter, "*"))
    if letter in RANKS:
        holder = roster.nicknames.holder(argument)
        nick = None if holder is None else channel.nick_of(holder)
        if holder is None:
            return replies.Error(f"no such nick: {argument}", "no-such-nick", argument)
        if nick is None:
            return replies.Error(f"{argument} is not in {channel.name}", "user-not-in-channel", argument, (channel.name,))
        return (change[0], nick) if channel.set_rank(holder, RANKS[letter], on) else nothing
    if letter in FLAGS:
        if on == (letter in modes.flags):
            return nothing
        (modes.flags.add if on else modes.flags.discard)(letter)
        return change[0], ""
    if letter == "k":
        if not on:
            if not modes.key:
                return nothing
            modes.key = ""
            return "-k", "*"
        if not argument or len(argument) > MAX_KEY_CHARS or "," in argument or any(c.isspace() for c in argument):
            return replies.Error(f"a key is one word of at most {MAX_KEY_CHARS} characters, no commas",
                                 "bad-mode-argument", channel.name, ("k", "*"))
        if argument == modes.key:
            return nothing
        modes.key = argument
        return "+k", argument
    if letter == "l":
        if not on:
            if not modes.limit:
                return nothing
            modes.limit = 0
            return "-l", ""
        if not argument.isdigit() or not 0 < int(argument) <= 1_000_000:
            return replies.Error(f"a limit is a number of members, not {argument}", "bad-mode-argument",
                                 channel.name, ("l", argument or "*"))
        if int(argument) == modes.limit:
            return nothing
        modes.limit = int(argument)
        return "+l", str(modes.limit)
    if letter in LISTS:
        kept, mask = modes.masks[letter], full_mask(argument)
        same = next((known for known in kept if known.casefold() == mask.casefold()), None)
        if not on:
            if same is None:
                return nothing
            del kept[same]
            return change[0], same
        if same is not None:
            return nothing
        if len(kept) >= MAX_MASKS:
            return replies.Error(f"{channel.name} has {MAX_MASKS} of them, the most it keeps", "mask-list-full",
                                 channel.name, (letter,))
        kept[mask] = MaskEntry(mask, by, at)
        return change[0], mask
    return replies.Error(f"no such mode: {letter}", "unknown-mode", letter)


def put_out(roster: Roster, fan_out: FanOut, crowd: Crowd, channel: Channel, who: Who, kicked: Kicked) -> None:
    """
    `who` is kicked out of `channel`: every member (`who` too) is told,
    then `who` is out of it (a member of this node then talks in their
    latest channel, or none), and an emptied channel goes.
    """
    fan_out.broadcast(kicked, channel.key)
    loud = crowd.is_loud(channel)
    channel.ranks.pop(who, None)
    if isinstance(who, Remote):
        if who.channels.pop(channel.key, None) is not None:
            del channel.elsewhere[who]
            crowd.left(channel, who, who.nick, loud)
        return
    member = roster.members.get(who)
    if member is None or channel.key not in member.channels or not fan_out.caught_up_with(member):
        return
    del member.channels[channel.key]
    del channel.members[who]
    if member.current is channel:
        member.current = next(reversed(member.channels.values()), None)
    member.update_view()
    crowd.left(channel, who, member.nick, loud)
    if member.current is not None:
        fan_out.send(member, replies.NowTalkingIn(member.current.name))


class Operators:
    """Carries out a member's MODE, KICK and INVITE, and says what a channel's modes let through."""

    def __init__(self, clock: IReactorTime, roster: Roster, fan_out: FanOut, moderation: Moderation | None,
                 crowd: Crowd, tell: Callable[..., None], keep: Callable[[Channel], None]) -> None:
        self._clock = clock
        self._roster = roster
        self._fan_out = fan_out
        self._moderation = moderation
        self._crowd = crowd
        self._tell = tell  # replies to the member whose command this is
        self._keep = keep  # a founder's channel's modes, to the store

    # -- questions

    def is_operator(self, member: Member, channel: Channel) -> bool:
        """An operator of `channel`, or of the server."""
        return "@" in channel.rank_of(member.session) or (
            self._moderation is not None and self._moderation.is_operator(member.session))

    def join_refusal(self, member: Member, channel: Channel, key: str) -> replies.Error | None:
        """Why `member` may not join `channel` (None: they may), checked as InspIRCd does: +b, +i, +k, +l."""
        modes, invited = channel.modes, name_key(member.nick) in channel.modes.invited
        if invited or (self._moderation is not None and self._moderation.is_operator(member.session)):
            return None
        name = channel.name
        known_as = masks_of(member)
        if modes.banned(known_as):
            return replies.Error(f"you are banned from {name}", "banned-from-channel", name)
        if "i" in modes.flags and not modes.invite_exempt(known_as):
            return replies.Error(f"{name} is invite only: an operator of it may /invite you", "invite-only", name)
        if modes.key and key != modes.key:
            return replies.Error(f"{name} has a key: /join {name} KEY", "bad-channel-key", name)
        if modes.limit and channel.count >= modes.limit:
            return replies.Error(f"{name} is full ({modes.limit} members)", "channel-full", name)
        return None

    def speech_refusal(self, member: Member, channel: Channel) -> replies.Error | None:
        """Why `member` may not speak in `channel` (None: they may): +m without a rank, or a ban."""
        modes = channel.modes
        if channel.rank_of(member.session) or not ("m" in modes.flags or modes.masks["b"]):
            return None
        if "m" in modes.flags and not self.is_operator(member, channel):
            return replies.Error(f"{channel.name} is moderated: only its operators and voiced members speak",
                                 "cannot-send", channel.name)
        if modes.banned(masks_of(member)) and not self.is_operator(member, channel):
            return replies.Error(f"you are banned from {channel.name}", "cannot-send", channel.name)
        return None

    def topic_refusal(self, member: Member, channel: Channel) -> replies.Error | None:
        if "t" in channel.modes.flags and not self.is_operator(member, channel):
            return _not_operator(channel)
        return None

    # -- commands

    def mode(self, member: Member, channel: Channel, words: tuple[str, ...]) -> None:
        """Show `channel`'s modes, list its masks, or change them."""
        session, modes = member.session, channel.modes
        read = read_mode_words(words)
        for letter in read.unknown:
            self._tell(session, replies.Error(f"no such mode: {letter}", "unknown-mode", letter))
        for letter in read.lists:
            entries = tuple((entry.mask, entry.by, entry.at) for entry in modes.masks[letter].values())
            self._tell(session, replies.MaskList(channel.name, letter, entries))
        if not words:
            shown, arguments = modes.shown(with_key=session in channel.members)
            self._tell(session, replies.ModesShown(channel.name, shown, arguments, modes.created_at))
            return
        if not read.changes:
            return
        if not self.is_operator(member, channel):
            self._tell(session, _not_operator(channel))
            return
        now, made = self._clock.seconds(), []
        for change in read.changes:
            outcome = apply_change(self._roster, channel, change, member.nick, now)
            if isinstance(outcome, replies.Error):
                self._tell(session, outcome)
            elif outcome[0]:
                made.append(outcome)
        if made:
            modes.changed_at = now
            if modes.founder:
                self._keep(channel)
            log.info("{nick} set {channel} {changes}", nick=member.nick, channel=channel.name,
                     changes=" ".join(change + (f" {argument}" if argument else "") for change, argument in made))
            self._fan_out.broadcast(ModeChanged(channel.name, member.nick, tuple(made), at=now), channel.key)

    def kick(self, member: Member, channel: Channel, nick: str, reason: str) -> None:
        session = member.session
        if not self.is_operator(member, channel):
            self._tell(session, _not_operator(channel))
            return
        holder = self._roster.nicknames.holder(nick)
        target = None if holder is None else channel.nick_of(holder)
        if holder is None or target is None:
            self._tell(session, replies.Error(f"{nick} is not in {channel.name}", "user-not-in-channel", nick,
                                              (channel.name,)))
            return
        log.info("{nick} kicked {target} from {channel}", nick=member.nick, target=target, channel=channel.name)
        kicked = Kicked(channel.name, target, member.nick, reason, channel.count - 1, at=self._clock.seconds())
        put_out(self._roster, self._fan_out, self._crowd, channel, holder, kicked)

    def invite(self, member: Member, channel: Channel, nick: str) -> None:
        session = member.session
        if "i" in channel.modes.flags and not self.is_operator(member, channel):
            self._tell(session, _not_operator(channel))
            return
        holder = self._roster.nicknames.holder(nick)
        if holder is None:
            self._tell(session, replies.Error(f"no such nick: {nick}", "no-such-nick", nick))
            return
        invited = channel.nick_of(holder)
        if invited is not None:
            self._tell(session, replies.Error(f"{invited} is already in {channel.name}", "already-in-channel",
                                              invited, (channel.name,)))
            return
        if isinstance(holder, Remote):  # their node lets them in
            invited = holder.nick
            self._fan_out.send_on(InviteSent(member.nick, invited, channel.name, at=self._clock.seconds()))
        else:
            target = self._roster.members[holder]
            invited = target.nick
            self.invited(target, channel, member.nick)
        log.info("{nick} invited {target} into {channel}", nick=member.nick, target=invited, channel=channel.name)
        self._tell(session, replies.Inviting(invited, channel.name))
        self._fan_out.broadcast(Invited(channel.name, invited, member.nick, at=self._clock.seconds()), channel.key,
                                session)

    def invited(self, target: Member, channel: Channel, by: str) -> None:
        """`target`, a member of this node, may join `channel` once past its modes; they are told."""
        invited = channel.modes.invited
        if len(invited) >= MAX_INVITED:  # the oldest are as likely as any to have been used: start again
            invited.clear()
        invited.add(name_key(target.nick))
        if self._fan_out.caught_up_with(target):
            self._fan_out.send(target, replies.InvitedTo(by, channel.name))


def _not_operator(channel: Channel) -> replies.Error:
    return replies.Error(f"you are not an operator of {channel.name}", "not-channel-operator", channel.name)
