"""
The IRC front door's every line, as text (without its CR LF).  Pure.

Every chat user, whatever their front door, appears to IRC clients as
`nick!nick@chatd`.  Numerics come from twisted.words.protocols.irc's names.
A message is cut into lines of what an IRC client may send in one (512
bytes with CR LF, RFC 1459, not counting the prefix the server adds): a
longer message from a telnet or web user reaches IRC clients as several lines.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone

from twisted.words.protocols import irc

from chatd import __version__
from chatd.core import replies
from chatd.core.roster import ChannelView
from chatd.core.events import (
    Acted,
    AccountChanged,
    AwayChanged,
    Invited,
    RealNameChanged,
    Crowd,
    Event,
    Joined,
    Kicked,
    Left,
    ModeChanged,
    Noticed,
    Parted,
    Renamed,
    Said,
    TopicChanged,
)
from chatd.core.modes import KNOWN, SHOWN_HOST, spelt
from chatd.core.tags import ACCOUNT, checked_tags, escaped
from chatd.core.watchers import MAX_WATCHED
from chatd.irc.help import help_lines

HOST = SHOWN_HOST
MAX_LINE_BYTES = 510  # without CR LF

# The core's refusals, as IRC numerics.
ERROR_NUMERICS = {
    "nickname-taken": irc.ERR_NICKNAMEINUSE,
    "bad-nickname": irc.ERR_ERRONEUSNICKNAME,
    "no-such-nick": irc.ERR_NOSUCHNICK,
    "no-such-channel": irc.ERR_NOSUCHCHANNEL,
    "bad-channel-name": irc.ERR_NOSUCHCHANNEL,
    "channel-taken": irc.ERR_NOSUCHCHANNEL,
    "not-in-channel": irc.ERR_NOTONCHANNEL,
    "no-channel": irc.ERR_NOTONCHANNEL,
    "too-many-joined": irc.ERR_TOOMANYCHANNELS,
    "too-many-channels": irc.ERR_TOOMANYCHANNELS,
    "not-operator": irc.ERR_NOPRIVILEGES,
    "not-channel-operator": irc.ERR_CHANOPRIVSNEEDED,
    "user-not-in-channel": irc.ERR_USERNOTINCHANNEL,
    "already-in-channel": irc.ERR_USERONCHANNEL,
    "unknown-mode": irc.ERR_UNKNOWNMODE,
    "banned-from-channel": irc.ERR_BANNEDFROMCHAN,
    "invite-only": irc.ERR_INVITEONLYCHAN,
    "bad-channel-key": irc.ERR_BADCHANNELKEY,
    "channel-full": irc.ERR_CHANNELISFULL,
    "cannot-send": irc.ERR_CANNOTSENDTOCHAN,
    "mask-list-full": irc.ERR_BANLISTFULL,
    "bad-mode-argument": "696",
    "no-moderation": irc.ERR_NOPRIVILEGES,
    "wrong-password": irc.ERR_PASSWDMISMATCH,
    "not-logged-in": irc.ERR_NOTREGISTERED,
}


def time_tag(at: float) -> str:
    """IRCv3 server-time's value: UTC, to the millisecond."""
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"




def tagged(lines: Iterable[str], tags: Mapping[str, str]) -> list[str]:
    """Lines with these IRCv3 message tags (values escaped as the spec says), after any they have."""
    return _with_tags(lines, ";".join(f"{name}={escaped(value)}" if value else name for name, value in tags.items()))


def client_tags(tags: Mapping[str, str]) -> str:
    """
    The client-only tags ("+name") of a line's tags, as one wire string
    (values escaped as the specification says), each checked as the core
    checks them (chatd.core.tags): one that is not is left out.
    """
    return ";".join(wire for name, value in tags.items() if name.startswith("+")
                    and checked_tags(wire := f"{name}={escaped(value)}" if value else name))


def with_message_tags(lines: Iterable[str], msgid: str, tags: str, message_tags: bool = True,
                      account_tag: bool = False) -> list[str]:
    """
    A message's lines with its tags, after any the lines have: with IRCv3
    message-tags, its msgid, `bot` and its sender's client tags; with
    account-tag, its sender's `account=`.  `tags` is the core's wire
    string, escaped and checked (chatd.core.tags).
    """
    shown = [f"msgid={msgid}"] if message_tags and msgid else []
    if tags:
        shown += [tag for tag in tags.split(";") if (account_tag if tag.startswith(ACCOUNT) else message_tags)]
    return _with_tags(lines, ";".join(shown))


def _with_tags(lines: Iterable[str], added: str) -> list[str]:
    """Lines with the tags `added` (a wire string) after any they have."""
    if not added:
        return list(lines)
    return [f"@{line[1:].split(' ', 1)[0]};{added} {line.split(' ', 1)[1]}" if line.startswith("@")
            else f"@{added} {line}" for line in lines]


def read_marker(server: str, target: str, at: float | None) -> str:
    """IRCv3 read-marker's MARKREAD: how far `target` was read ("*": not known)."""
    return line(server, "MARKREAD", target, f"timestamp={time_tag(at)}" if at is not None else "*")


def labelled(server: str, label: str, lines: Sequence[str], number: int, batch: bool) -> list[str]:
    """
    What answers a line with IRCv3's `label`: ACK for nothing, the one line
    with the label, or a labeled-response BATCH around several (without
    `batch` negotiated, the lines as they are).
    """
    if not lines:
        return tagged([f":{server} ACK"], {"label": label})
    if len(lines) == 1:
        return tagged(lines, {"label": label})
    if not batch:
        return list(lines)
    reference = f"L{number}"
    return [*tagged([f":{server} BATCH +{reference} labeled-response"], {"label": label}),
            *(line if has_tag(line, "batch") else tagged([line], {"batch": reference})[0] for line in lines),
            f":{server} BATCH -{reference}"]


def has_tag(line: str, name: str) -> bool:
    """Whether `line` carries the IRCv3 tag `name` (a line in a batch of its own stays in that one)."""
    if not line.startswith("@"):
        return False
    return any(tag.partition("=")[0] == name for tag in line[1:].split(" ", 1)[0].split(";"))


def mask(nick: str) -> str:
    return f"{nick}!{nick}@{HOST}"


def line(prefix: str, command: str, *params: str, text: str | None = None) -> str:
    """
    `:prefix COMMAND p1 p2 :last`: the last parameter after a colon when it
    has to be; `text` (a topic, a reason) always after one, as servers send it.
    """
    if text is not None:
        return " ".join([f":{prefix}", command, *params, ":" + text])
    if params:
        *middle, last = params
        if not last or " " in last or last.startswith(":"):
            last = ":" + last
        return " ".join([f":{prefix}", command, *middle, last])
    return f":{prefix} {command}"


def numeric(server: str, code: str, nick: str, *params: str, text: str | None = None) -> str:
    return line(server, code, nick or "*", *params, text=text)


def text_lines(prefix: str, command: str, target: str, text: str) -> list[str]:
    """
    PRIVMSG or NOTICE of `text`, cut at character boundaries into lines of
    what a client may send in one (512 bytes, without the prefix): a line
    an IRC client sent arrives whole, one line, as Ergo relays it (the
    prefix makes it longer than 512 bytes, which clients read); a telnet
    user's longer one, as several.
    """
    head = f":{prefix} {command} {target} :"
    room = MAX_LINE_BYTES - len(f"{command} {target} ".encode())  # the client may have sent no colon
    if len(text) * 4 <= room or len(text.encode()) <= room:  # the usual case: one line
        return [head + text]
    lines: list[str] = []
    chunk: list[str] = []
    size = 0
    for character in text:
        width = len(character.encode())
        if size + width > room:
            lines.append(head + "".join(chunk))
            chunk, size = [], 0
        chunk.append(character)
        size += width
    lines.append(head + "".join(chunk))
    return lines


def event(happened: Event, away_notify: bool = False, setname: bool = False, extended_join: bool = False,
          account_notify: bool = False, invite_notify: bool = False) -> list[str]:
    """
    What an IRC client is told of an event: with IRCv3's away-notify,
    others' AWAY; with setname, SETNAME; with extended-join, each JOIN with
    the joiner's account and real name; with account-notify, ACCOUNT; with
    invite-notify, the INVITEs into its channels.
    """
    match happened:
        case Said(channel, nick, text):
            return text_lines(mask(nick), "PRIVMSG", channel, text)
        case Acted(channel, nick, text):
            return text_lines(mask(nick), "PRIVMSG", channel, f"\x01ACTION {text}\x01")
        case Noticed(channel, nick, text):
            return text_lines(mask(nick), "NOTICE", channel, text)
        case Joined(channel, nick, rank=rank, away=away, account=account, realname=realname):
            lines = [join_line(nick, channel, account, realname) if extended_join else line(mask(nick), "JOIN", channel)]
            if rank:  # its founder, back: made operator by the server, as services do it
                lines.append(line(HOST, "MODE", channel, "+" + "".join(RANK_LETTERS[sign] for sign in rank),
                                  *([nick] * len(rank))))
            if away and away_notify:  # away-notify: a joiner who is away says so at once
                lines.append(line(mask(nick), "AWAY", text=away))
            return lines
        case Parted(channel, nick, reason):
            return [line(mask(nick), "PART", channel, text=reason) if reason else line(mask(nick), "PART", channel)]
        case TopicChanged(channel, nick, topic):
            return [line(mask(nick), "TOPIC", channel, text=topic)]
        case ModeChanged(channel, nick, changes):
            return [line(mask(nick), "MODE", channel, *spelt(changes))]
        case Kicked(channel, nick, by, reason):
            return [line(mask(by), "KICK", channel, nick, text=reason or by)]
        case Invited(channel, nick, by):
            return [line(mask(by), "INVITE", nick, channel)] if invite_notify else []
        case Crowd(channel, joiners=joiners, leavers=leavers):
            # An IRC client keeps its member list from JOIN and PART: the
            # summary of a big channel tells it who came and who went.
            return ([line(mask(nick), "PART", channel) for nick in leavers]
                    + [line(mask(nick), "JOIN", channel) for nick in joiners])
        case Renamed(old, new):
            return [line(mask(old), "NICK", new)]
        case Left(nick, reason):
            return [line(mask(nick), "QUIT", text=reason)]
        case AwayChanged(nick, text):
            if not away_notify:
                return []
            return [line(mask(nick), "AWAY", text=text)] if text else [line(mask(nick), "AWAY")]
        case RealNameChanged(nick, realname):
            return [line(mask(nick), "SETNAME", text=realname)] if setname else []
        case AccountChanged(nick, account):
            return [line(mask(nick), "ACCOUNT", account or "*")] if account_notify else []
    raise TypeError(f"not an event: {happened!r}")


RANK_LETTERS = {"@": "o", "+": "v"}


def welcome(server: str, nick: str, counts: replies.UserCounts, isupport: Sequence[str],
            motd: Sequence[str] = ()) -> list[str]:
    """001 to 005, LUSERS and the MOTD (or 422): what a client waits for before it is registered."""
    return [
        numeric(server, irc.RPL_WELCOME, nick, f"Welcome to chatd on {server}, {nick}"),
        numeric(server, irc.RPL_YOURHOST, nick, f"Your host is {server}, running chatd"),
        numeric(server, irc.RPL_CREATED, nick, "This server was started for a LAN"),
        numeric(server, irc.RPL_MYINFO, nick, server, f"chatd-{__version__}", "i", KNOWN, "Ibeklov"),
        *isupport_lines(server, nick, isupport),
        *lusers(server, nick, counts),
        *message_of_the_day(server, nick, motd),
    ]


def message_of_the_day(server: str, nick: str, motd: Sequence[str]) -> list[str]:
    """375, a 372 each line, 376; or 422 where there is none."""
    if not motd:
        return [numeric(server, irc.ERR_NOMOTD, nick, "MOTD File is missing")]
    return [numeric(server, irc.RPL_MOTDSTART, nick, f"- {server} Message of the day -"),
            *(numeric(server, irc.RPL_MOTD, nick, text=f"- {line}") for line in motd),
            numeric(server, irc.RPL_ENDOFMOTD, nick, "End of /MOTD command")]


def isupport_lines(server: str, nick: str, isupport: Sequence[str]) -> list[str]:
    """005: at most 13 tokens a line, as RFC 2812's 15 parameters leave room for."""
    return [numeric(server, irc.RPL_ISUPPORT, nick, *isupport[start:start + 13], "are supported by this server")
            for start in range(0, len(isupport), 13)]


def lusers(server: str, nick: str, counts: replies.UserCounts) -> list[str]:
    """
    LUSERS: everyone online (every node of a cluster) and this server's
    own users (251, 254, 255, 265, 266, with the most so far; no operators
    or unknown connections counted: 252 and 253 are left out, as RFC 2812
    allows for none).
    """
    users, local, most_users, most_local = counts.everyone, counts.here, counts.most_everyone, counts.most_here
    return [
        numeric(server, irc.RPL_LUSERCLIENT, nick, f"There are {users} users and 0 invisible on 1 servers"),
        numeric(server, irc.RPL_LUSERCHANNELS, nick, str(counts.channels), "channels formed"),
        numeric(server, irc.RPL_LUSERME, nick, f"I have {local} clients and 0 servers"),
        numeric(server, "265", nick, str(local), str(most_local), f"Current local users {local}, max {most_local}"),
        numeric(server, "266", nick, str(users), str(most_users), f"Current global users {users}, max {most_users}"),
    ]


def topic_who_time(server: str, nick: str, channel: str, by: str, at: float) -> str:
    """333: who set the topic, and when."""
    return numeric(server, "333", nick, channel, mask(by) if by else server, str(int(at)))


def join_line(nick: str, channel: str, account: str, realname: str) -> str:
    """IRCv3 extended-join's JOIN: with the joiner's account ("*": none) and real name."""
    return line(mask(nick), "JOIN", channel, account or "*", text=realname)


def joined(server: str, nick: str, channel: str, topic: str, topic_by: str, topic_at: float, members: Iterable[str],
           history: Sequence[Event], multi_prefix: bool = False, secret: bool = False,
           server_time: bool = False, extended: tuple[str, str] | None = None) -> list[str]:
    """
    Your own JOIN (with extended-join, `extended`: your account and real
    name), the topic (332, 333), the names, then the channel's recent
    messages as NOTICEs from the server.
    """
    lines = [join_line(nick, channel, *extended) if extended is not None else line(mask(nick), "JOIN", channel)]
    if topic:
        lines.append(numeric(server, irc.RPL_TOPIC, nick, channel, text=topic))
        lines.append(topic_who_time(server, nick, channel, topic_by, topic_at))
    lines += names(server, nick, channel, members, multi_prefix, secret)
    for item in history:  # with server-time, each at the time it was said
        said = _history_line(server, channel, item)
        lines += tagged(said, {"time": time_tag(item.at)}) if server_time else said
    return lines


def _history_line(server: str, channel: str, item: Event) -> list[str]:
    if isinstance(item, Said):
        return text_lines(server, "NOTICE", channel, f"<{item.nick}> {item.text}")
    if isinstance(item, Acted):
        return text_lines(server, "NOTICE", channel, f"* {item.nick} {item.text}")
    return []


def names(server: str, nick: str, channel: str, members: Iterable[str], multi_prefix: bool = False,
          secret: bool = False) -> list[str]:
    """
    353 (as many as it takes, each within 512 bytes) and 366; each member
    after their highest rank ("@bob"), or every rank with `multi_prefix`
    (IRCv3's: "@+bob").
    """
    head = f":{server} {irc.RPL_NAMREPLY} {nick} {'@' if secret else '='} {channel} :"
    room = MAX_LINE_BYTES - len(head.encode())
    lines: list[str] = []
    chunk: list[str] = []
    size = -1  # the spaces between names: one fewer than the names
    for member in members:
        if not multi_prefix and member[0] in "@+" and member[1:2] in ("@", "+"):
            member = member[0] + member.lstrip("@+")
        width = len(member) + 1 if member.isascii() else len(member.encode()) + 1
        if chunk and size + width > room:
            lines.append(head + " ".join(chunk))
            chunk, size = [], -1
        chunk.append(member)
        size += width
    if chunk:
        lines.append(head + " ".join(chunk))
    return lines + [numeric(server, irc.RPL_ENDOFNAMES, nick, channel, "End of /NAMES list")]


def reply(server: str, nick: str, answer: object) -> list[str]:
    """
    One of the core's replies (LoggedIn and ChannelJoined are the
    session's: they need the welcome and the session's nickname).  An
    Error's subject is the nick or channel it is about, which IRC's error
    numerics name.
    """
    match answer:
        case replies.ChannelParted(channel, _, reason):
            return [line(mask(nick), "PART", channel, text=reason) if reason else line(mask(nick), "PART", channel)]
        case replies.NowTalkingIn():
            return []  # IRC has no current channel
        case replies.UserList(nicks):
            return names(server, nick, "*", nicks)
        case replies.ChannelMembers(channel, nicks, secret):
            return names(server, nick, channel, nicks, secret=secret)
        case replies.ChannelList(channels):
            return listing(server, nick, channels)
        case replies.TopicShown(channel, topic, by, at):
            if topic:
                return [numeric(server, irc.RPL_TOPIC, nick, channel, text=topic),
                        topic_who_time(server, nick, channel, by, at)]
            return [numeric(server, irc.RPL_NOTOPIC, nick, channel, "No topic is set")]
        case replies.ModesShown(channel, modes, arguments, created_at):
            return [numeric(server, irc.RPL_CHANNELMODEIS, nick, channel, modes, *arguments),
                    numeric(server, "329", nick, channel, str(int(created_at)))]
        case replies.MaskList(channel, "b", entries):
            return [*(numeric(server, irc.RPL_BANLIST, nick, channel, mask, by, str(int(at))) for mask, by, at in entries),
                    numeric(server, irc.RPL_ENDOFBANLIST, nick, channel, "End of channel ban list")]
        case replies.MaskList(channel, "e", entries):
            return [*(numeric(server, irc.RPL_EXCEPTLIST, nick, channel, mask, by, str(int(at)))
                      for mask, by, at in entries),
                    numeric(server, irc.RPL_ENDOFEXCEPTLIST, nick, channel, "End of channel exception list")]
        case replies.MaskList(channel, _, entries):
            return [*(numeric(server, irc.RPL_INVITELIST, nick, channel, mask, by, str(int(at)))
                      for mask, by, at in entries),
                    numeric(server, irc.RPL_ENDOFINVITELIST, nick, channel, "End of channel invite exception list")]
        case replies.Inviting(invited, channel):
            return [numeric(server, irc.RPL_INVITING, nick, invited, channel)]
        case replies.InvitedTo(by, channel):
            return [line(mask(by), "INVITE", nick, channel)]
        case replies.AwayChanged(away):
            return [numeric(server, irc.RPL_NOWAWAY, nick, "You have been marked as being away") if away
                    else numeric(server, irc.RPL_UNAWAY, nick, "You are no longer marked as being away")]
        case replies.IsAway(away_nick, text):
            return [numeric(server, irc.RPL_AWAY, nick, away_nick, text=text)]
        case replies.UserInfo():
            return whois(server, nick, answer)
        case replies.WatchedOnline(nicks):
            return [numeric(server, "730", nick, text=",".join(mask(online) for online in nicks))]
        case replies.WatchedOffline(nicks):
            return [numeric(server, "731", nick, text=",".join(nicks))]
        case replies.WatchListFull(nicks):
            return [numeric(server, "734", nick, str(MAX_WATCHED), ",".join(nicks), "Monitor list is full")]
        case replies.PrivateSent():
            return []  # IRC clients show what they sent themselves
        case replies.PrivateReceived(sender, text, notice):
            return text_lines(mask(sender), "NOTICE" if notice else "PRIVMSG", nick, text)
        case replies.Tagged():
            return []  # only with message-tags (chatd.irc.protocol)
        case replies.ReadMarker(target, at):
            return [read_marker(server, target, at)]
        case replies.Bye():
            return []  # the ERROR that closes the connection follows
        case replies.OperatorNow():
            return [numeric(server, irc.RPL_YOUREOPER, nick, "You are now an IRC operator"), line(mask(nick), "MODE", nick, "+o")]
        case replies.KickedOut(by, reason):
            return [line(server, "NOTICE", nick, f"You were kicked by {by}" + (f" ({reason})" if reason else ""))]
        case replies.BanAdded(address, minutes):
            until = "until restart" if minutes == 0 else f"for {minutes:g} minutes"
            return [line(server, "NOTICE", nick, f"Banned {address} {until}")]
        case replies.BanLifted(address):
            return [line(server, "NOTICE", nick, f"Unbanned {address}")]
        case replies.BanList(bans):
            return [line(server, "NOTICE", nick, f"Bans: {', '.join(bans)}" if bans else "No bans")]
        case replies.Error(reason, code, subject, more):
            return [error(server, nick, reason, code, subject, more)]
        case replies.ContactLost():
            return [line(server, "NOTICE", nick, "Lost contact with the rest of the chat; retrying")]
        case replies.ContactRestored(gap):
            return [line(server, "NOTICE", nick, "Back in contact with the rest of the chat" + (
                "; some of what was said elsewhere meanwhile is lost" if gap else ""))]
    lines = account_reply(server, nick, answer)
    if lines is None:
        raise TypeError(f"not a reply: {answer!r}")
    return lines


def whois(server: str, nick: str, user: replies.UserInfo) -> list[str]:
    """WHOIS: 311, 319, 312, 313, 335, 301, 317, 330 (each where there is something to say), 318."""
    lines = [numeric(server, irc.RPL_WHOISUSER, nick, user.nick, user.username, HOST, "*", text=user.realname)]
    if user.channels:
        lines.append(numeric(server, irc.RPL_WHOISCHANNELS, nick, user.nick, text=" ".join(user.channels)))
    lines.append(numeric(server, irc.RPL_WHOISSERVER, nick, user.nick, user.node or server,
                         "another server of this chat" if user.node else "chatd"))
    if user.operator:
        lines.append(numeric(server, irc.RPL_WHOISOPERATOR, nick, user.nick, "is an IRC operator"))
    if user.bot:
        lines.append(numeric(server, "335", nick, user.nick, "is a bot"))
    if user.away:
        lines.append(numeric(server, irc.RPL_AWAY, nick, user.nick, text=user.away))
    if not user.node:  # this server knows when its own users came and last spoke
        lines.append(numeric(server, irc.RPL_WHOISIDLE, nick, user.nick, str(int(user.idle_seconds)),
                             str(int(user.signon)), "seconds idle, signon time"))
    if user.account:
        lines.append(numeric(server, "330", nick, user.nick, user.account, "is logged in as"))
    return lines + [numeric(server, irc.RPL_ENDOFWHOIS, nick, user.nick, "End of /WHOIS list")]


def monitor_list(server: str, nick: str, watched: Sequence[str]) -> list[str]:
    """MONITOR L: 732 (as many as it takes) and 733."""
    lines, chunk = [], []
    for watching in watched:
        chunk.append(watching)
        if len(chunk) == 20:
            lines.append(numeric(server, "732", nick, text=",".join(chunk)))
            chunk = []
    if chunk:
        lines.append(numeric(server, "732", nick, text=",".join(chunk)))
    return lines + [numeric(server, "733", nick, "End of MONITOR list")]


def whowas(server: str, nick: str, asked: str, found: Sequence[replies.UserInfo]) -> list[str]:
    """WHOWAS: 314 and 312 for each time the nickname was used (406 for none), then 369."""
    lines = []
    for was in found:
        lines.append(numeric(server, irc.RPL_WHOWASUSER, nick, was.nick, was.username, HOST, "*", text=was.realname))
        lines.append(numeric(server, irc.RPL_WHOISSERVER, nick, was.nick, server, time.strftime(
            "%a %b %d %H:%M:%S %Y", time.localtime(was.signon))))
    if not found:
        lines.append(numeric(server, irc.ERR_WASNOSUCHNICK, nick, asked, "There was no such nickname"))
    return lines + [numeric(server, irc.RPL_ENDOFWHOWAS, nick, asked, "End of WHOWAS")]


def who_line(server: str, nick: str, channel: str, user: replies.UserInfo, rank: str, fields: str) -> str:
    """
    352 (`channel user host server nick flags :hops realname`), or, for
    WHOX's `fields` (`cuhnfar,TOKEN`), 354 with those asked, in WHOX's order.
    """
    flags = ("G" if user.away else "H") + ("*" if user.operator else "") + rank + ("B" if user.bot else "")
    if not fields:
        return numeric(server, irc.RPL_WHOREPLY, nick, channel, user.username, HOST, user.node or server, user.nick,
                       flags, text=f"0 {user.realname}")
    letters, _, token = fields.partition(",")
    token = token if token.isdigit() and len(token) <= 3 else "0"  # WHOX's: at most three digits
    values = {"t": token or "0", "c": channel, "u": user.username, "i": "255.255.255.255", "h": HOST,
              "s": user.node or server, "n": user.nick, "f": flags, "d": "0", "l": str(int(user.idle_seconds)),
              "a": user.account or "0", "o": "n/a", "r": user.realname}
    asked = [values[letter] for letter in "tcuihsnfdlaor" if letter in letters]
    if asked and "r" in letters:
        return numeric(server, "354", nick, *asked[:-1], text=asked[-1])
    return numeric(server, "354", nick, *asked)


def listing(server: str, nick: str, channels: Sequence[ChannelView | replies.ChannelInfo]) -> list[str]:
    """LIST: these channels (321, 322 each, 323)."""
    return [numeric(server, irc.RPL_LISTSTART, nick, "Channel", "Users  Name"),
            *(numeric(server, irc.RPL_LIST, nick, view.name, str(view.count), text=view.topic) for view in channels),
            numeric(server, irc.RPL_LISTEND, nick, "End of /LIST")]


def about_server(server: str, nick: str, query: str, isupport: Sequence[str], motd: Sequence[str] = ()) -> list[str]:
    """TIME, VERSION, INFO, ADMIN and MOTD."""
    match query:
        case "TIME":
            return [numeric(server, irc.RPL_TIME, nick, server, time.strftime("%A %B %d %Y -- %H:%M:%S %z"))]
        case "VERSION":
            return [numeric(server, irc.RPL_VERSION, nick, f"chatd-{__version__}.", server,
                            "a chat server for a LAN: telnet, the web and IRC into the same channels"),
                    *isupport_lines(server, nick, isupport)]
        case "INFO":
            return [numeric(server, irc.RPL_INFO, nick, f"chatd {__version__}, a chat server for a LAN"),
                    numeric(server, irc.RPL_INFO, nick, "telnet, the web page and IRC clients share its channels"),
                    numeric(server, irc.RPL_ENDOFINFO, nick, "End of /INFO list")]
        case "ADMIN":
            return [numeric(server, irc.RPL_ADMINME, nick, server, "Administrative info"),
                    numeric(server, irc.RPL_ADMINLOC1, nick, "A chatd on the local network"),
                    numeric(server, irc.RPL_ADMINLOC2, nick, "Ask whoever runs it in the room"),
                    numeric(server, irc.RPL_ADMINEMAIL, nick, "no e-mail: this is a LAN chat")]
    return message_of_the_day(server, nick, motd)


NICKSERV = "NickServ"


def nickserv(nick: str, texts: Iterable[str]) -> list[str]:
    """NOTICEs from NickServ, for whom chatd answers."""
    return [text for said in texts for text in text_lines(mask(NICKSERV), "NOTICE", nick, said)]


def notices(server: str, nick: str, texts: Iterable[str]) -> list[str]:
    return [text for said in texts for text in text_lines(server, "NOTICE", nick, said)]


def when(at: float) -> str:
    """A time that may be days ago, in the server's local time: "Dec 05 14:02"."""
    return time.strftime("%b %d %H:%M", time.localtime(at))


def _shown(item: Event) -> str:
    if isinstance(item, Said):
        return f"[{when(item.at)}] {item.channel} <{item.nick}> {item.text}"
    if isinstance(item, Acted):
        return f"[{when(item.at)}] {item.channel} * {item.nick} {item.text}"
    if isinstance(item, TopicChanged):
        return f"[{when(item.at)}] {item.channel} {item.nick} set the topic: {item.topic}"
    return ""


def account_reply(server: str, nick: str, answer: object) -> list[str] | None:
    """The core's replies about accounts, notes, mentions and history; None for any other."""
    match answer:
        case replies.Identified(account):
            return [numeric(server, "900", nick, mask(nick), account, f"You are now logged in as {account}"),
                    *nickserv(nick, [f"You are now identified as {account}"])]
        case replies.GuestNickname(wanted, guest):
            return nickserv(guest, [f"{wanted} is registered: you are {guest} until you identify "
                                    f"(/msg {NICKSERV} IDENTIFY password, or SASL)"])
        case replies.PasswordWanted(wanted):
            return nickserv(nick, [f"{wanted} is registered: /msg {NICKSERV} IDENTIFY {wanted} password"])
        case replies.Registered(account):
            return nickserv(nick, [f"{account} is registered to you now: from now on, it asks for your password"])
        case replies.PasswordChanged(account):
            return nickserv(nick, [f"Your password for {account} is changed"])
        case replies.Unregistered(account):
            return nickserv(nick, [f"{account} is not registered any more"])
        case replies.NoteKept(to):
            return notices(server, nick, [f"{to} is away; they get your message when they log in"])
        case replies.NotesWhileAway(notes):
            count = len(notes)
            return notices(server, nick, [f"{count} message{'' if count == 1 else 's'} while you were away:",
                                          *(f"[{when(note.at)}] <{note.sender}> {note.text}" for note in notes)])
        case replies.MentionsWhileAway(counts):
            return notices(server, nick, [f"You were mentioned {'once' if count == 1 else f'{count} times'} in "
                                          f"{channel} since you left" for channel, count in counts])
        case replies.MentionList(events):
            return notices(server, nick, [*(_shown(item) for item in events), "End of mentions"]
                           if events else ["No mentions since you left"])
        case replies.HistoryShown(channel, events):
            return notices(server, nick, [*(_shown(item) for item in events), f"End of history of {channel}"]
                           if events else [f"No history kept for {channel}"])
        case replies.HistoryNotKept():
            return notices(server, nick, ["History is not being saved: the server cannot write its store (what is "
                                          "said still reaches everyone online)"])
        case replies.HistoryKeptAgain():
            return notices(server, nick, ["History is saved again"])
        case replies.Unread():
            return []  # the web page's: IRC clients keep their own
    return None


def refusal(server: str, nick: str, answer: replies.Error, verb: str | None) -> list[str]:
    """
    A refusal of the core's, as IRC answers it to `verb` (the command it
    refuses, when that matters): nothing at all to a NOTICE (RFC 2812
    3.3.2: automatic replies would make bots loop), 404 to a PRIVMSG to a
    channel one is not in, and NAMES's 366 alone for a channel that is not there.
    """
    if verb == "NOTICE" or answer.code == "same-nickname":  # NICK to one's own nickname: nothing to say
        return []
    if answer.code == "bad-realname":  # IRCv3 SETNAME's own refusal
        return [line(server, "FAIL", "SETNAME", "INVALID_REALNAME", text=answer.reason)]
    if verb == "PRIVMSG" and answer.code == "not-in-channel":
        return [numeric(server, irc.ERR_CANNOTSENDTOCHAN, nick, answer.subject, "Cannot send to channel")]
    if verb == "CHATHISTORY" and answer.code in ("no-such-channel", "not-in-channel"):
        return [line(server, "FAIL", "CHATHISTORY", "INVALID_TARGET", answer.subject, text=answer.reason)]
    if verb == "NAMES" and answer.code == "no-such-channel":
        return [numeric(server, irc.RPL_ENDOFNAMES, nick, answer.subject, "End of /NAMES list")]
    if verb == "WHOIS" and answer.code == "no-such-nick":
        return [numeric(server, irc.ERR_NOSUCHNICK, nick, answer.subject, "No such nick/channel"),
                numeric(server, irc.RPL_ENDOFWHOIS, nick, answer.subject, "End of /WHOIS list")]
    return [error(server, nick, answer.reason, answer.code, answer.subject, answer.more)]


def error(server: str, nick: str, reason: str, code: str, subject: str = "", more: Sequence[str] = ()) -> str:
    """
    A refusal: its numeric (about `subject`, the nick or channel asked for,
    and `more`: the channel a nick is in, a mode's letter and argument) where
    IRC has one, else a NOTICE.
    """
    number = ERROR_NUMERICS.get(code)
    if number is None:
        return line(server, "NOTICE", nick or "*", f"Error: {reason}")
    return numeric(server, number, nick, *((subject,) if subject else ()), *more, text=reason)


def help_reply(server: str, nick: str, subject: str) -> list[str]:
    """HELP: 704, 705 ..., 706 (each with the subject), or 524 if there is no help on it."""
    found = help_lines(subject)
    if found is None:
        return [numeric(server, "524", nick, subject, "No help available on this topic")]
    topic, lines = found
    return [numeric(server, "704" if index == 0 else "705", nick, topic, text=text)
            for index, text in enumerate(lines)] + [numeric(server, "706", nick, topic, "End of /HELP")]
