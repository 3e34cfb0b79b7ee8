"""
The telnet front door's every line, as text.  Pure.

The exact formats are part of the product: users' scripts and the tests rely
on them.  The transport adds CR LF to each line.

    *** Welcome to chatd on NAME. 2 users online.     on connect
    *** Choose a nickname:                            on connect, after a refusal
    *** Hello alice! Type /help for commands.         to a user who joined (then the --motd-file, each line after ***)
    *** alice has joined (3 users online)             to everyone else (in the default channel)
    *** alice has joined (3 users)                    ... in any other channel
    [#lab] <bob> hi                                   a line from a channel that is not your current one
    *** alice has left #lab (REASON)                  /part
    *** 12 joined, 3 left #lobby (214 users)          joins and leaves of a big channel (--quiet-joins)
    *** alice set the topic of #lab: TEXT             /topic TEXT (or: cleared the topic of #lab)
    *** You joined #lab (3 users)                     /join, then the topic and recent messages
    *** Now talking in #lab                           /join of a channel you are in
    *** You left #lab; now talking in #lobby          /part (or: you are in no channel now)
    *** 3 channels: #lobby (12), #lab (3)             /channels, then a line per topic: *** #lab: TOPIC
    *** 3 users in #lab: alice, bob, carol            /list #lab
    *** Topic of #lab: TEXT                           /topic (or: *** #lab has no topic)
    <alice> TEXT                                      public message
    * alice TEXT                                      action (/me)
    -alice- TEXT                                      a notice (an IRC client's, a bot's), to a channel or to you
    *alice* TEXT                                      private message, to bob
    -> *bob* TEXT                                     private message, to alice
    *** 3 users online: alice, bob, carol             /list
    *** alice is now known as al                      rename, to everyone
    *** alice has left (REASON)                       to everyone else
    *** alice is away: lunch                          /away lunch, to whoever shares a channel (or: *** alice is back)
    *** Bye!                                          to a user who quits
    *** Charset is now gbk                            /charset
    *** Commands: ...                                 /help: one line per command (HELP, OPERATOR_HELP)
    *** Error: REASON                                 every refusal
    *** Your input is not valid utf-8; ...            once, on undecodable input
    *** alice sets mode +o bob on #lab                a channel's modes changed (MODE)
    *** bob was kicked from #lab by alice (REASON)    a kick out of one channel
    *** Modes of #lab: +knt solder                    /mode #lab (the key only to members)
    *** Bans of #lab: *!*@10.0.0.7 (alice, Dec 05 14:02)   /bans #lab (or: *** #lab has no bans)
    *** You are marked away: lunch                    /away lunch (or: *** You are back)
    *** bob is away: lunch                            to whoever sends bob a private message
    *** bob (bob): in @#lab #lobby; away: lunch; idle 3 min; on since Dec 05 14:02; identified   /whois bob
    *** You invited bob into #lab                     /invite bob #lab; bob sees:
    *** alice invites you into #lab (/join #lab)
    *** Server shutting down                          to everyone, on SIGTERM or SIGINT
    *** You are now an operator                       /oper with the right password
    *** You were kicked by alice (REASON)             to a kicked user; the others see
    *** bob has left (Kicked by alice: REASON)        ... or (Banned by alice)
    *** Banned 192.0.2.7 for 60 minutes               /ban (or: until restart)
    *** Unbanned 192.0.2.7                            /unban
    *** Bans: 192.0.2.7 (until 14:05), ...            /bans (or: *** No bans)
    *** Error: you are banned from this server        a banned address connecting
    *** Error: server full                            over --max-clients, then closed
    *** Error: too many connections from your address over --max-per-ip, then closed
    *** Error: no nickname chosen within 60 s; closing    --login-timeout
    *** Error: no input for 600 s; closing            --idle-timeout
    *** alice is registered; password:                a registered nickname chosen (echo off while typed)
    *** alice is registered to you now; ...           /register
    *** You are identified as alice                   /identify
    *** bob is away; they get your message when they log in    /msg to a registered user who is away
    *** 2 messages while you were away:               at login, then a line each: [Dec 05 14:02] *bob* TEXT
    *** You were mentioned 3 times in #lab since you left (/mentions lists them)
    *** History of #lab (2 lines):                    /history, then a line each, then *** End of history
    *** History is not being saved: ...               the store cannot write (and: *** History is saved again)
    This is chatd, a telnet chat server, not an HTTP server. Connect with: telnet HOST PORT
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from chatd.core import replies
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
from chatd.core.modes import spelt
from chatd.core.server import MAX_CHANNELS_PER_USER

# What each mask list of a channel is called (chatd.core.modes.LISTS).
LIST_NAMES = {"b": "bans", "e": "exceptions", "I": "invite exceptions"}

def event(happened: Event, current: str | None = None, lobby: str = "#lobby") -> str:
    """
    The line a member sees for an event: as it is for events of their
    `current` channel, with the channel in front for their other channels.
    In the default channel (`lobby`) a join counts users online.  "": none.
    """
    match happened:
        case Said(channel, nick, text):
            line = f"<{nick}> {text}"
        case Acted(channel, nick, text):
            line = f"* {nick} {text}"
        case Noticed(channel, nick, text):
            line = f"-{nick}- {text}"
        case Joined(channel, nick, count):
            line = f"*** {nick} has joined ({users_online(count) if channel == lobby else users(count)})"
        case Parted(channel, nick, reason):
            return f"*** {nick} has left {channel}" + (f" ({reason})" if reason else "")
        case TopicChanged(channel, nick, topic):
            return f"*** {nick} set the topic of {channel}: {topic}" if topic else f"*** {nick} cleared the topic of {channel}"
        case ModeChanged(channel, nick, changes):
            return f"*** {nick} sets mode {' '.join(spelt(changes))} on {channel}"
        case Invited(channel, nick, by):
            line = f"*** {by} invited {nick}"
        case Kicked(channel, nick, by, reason):
            return f"*** {nick} was kicked from {channel} by {by}" + (f" ({reason})" if reason else "")
        case Crowd(channel, joined, left, count):
            return f"*** {joined} joined, {left} left {channel} ({users(count)})"
        case Renamed(old, new):
            return f"*** {old} is now known as {new}"
        case Left(nick, reason):
            return f"*** {nick} has left ({reason})"
        case AwayChanged(nick, text):
            return f"*** {nick} is away: {text}" if text else f"*** {nick} is back"
        case RealNameChanged(nick, realname):
            return f"*** {nick}'s real name is now {realname}"
        case AccountChanged():
            return ""  # /whois says who is identified
        case _:
            raise TypeError(f"not an event: {happened!r}")
    return line if channel == current else f"[{channel}] {line}"


def users(count: int) -> str:
    return f"{count} user{'' if count == 1 else 's'}"


def users_online(count: int) -> str:
    return f"{users(count)} online"


def welcome(server_name: str, count: int) -> str:
    return f"*** Welcome to chatd on {server_name}. {users_online(count)}."


def choose_nickname() -> str:
    return "*** Choose a nickname:"


def hello(nick: str) -> str:
    return f"*** Hello {nick}! Type /help for commands."


def private_to_recipient(sender: str, text: str) -> str:
    return f"*{sender}* {text}"


def private_to_sender(recipient: str, text: str) -> str:
    return f"-> *{recipient}* {text}"


def user_list(nicks: Iterable[str]) -> str:
    ordered = sorted(nicks, key=lambda nick: (nick.casefold(), nick))
    return f"*** {users_online(len(ordered))}: {', '.join(ordered)}"


def bye() -> str:
    return "*** Bye!"


# The core's refusals that name a command, in this door's syntax.
_IN_TELNET_WORDS = {
    "no-channel": "you are in no channel; /join a channel first",
    "too-many-joined": f"you are in {MAX_CHANNELS_PER_USER} channels, the most one user may be in; /part one first",
}


def error(reason: str) -> str:
    return f"*** Error: {reason}"


def charset_is(charset: str) -> str:
    return f"*** Charset is now {charset}"


def charset_shown(charset: str) -> str:
    return f"*** Charset is {charset}"


# Charsets to suggest to a user whose input does not decode, most likely first.
_SUGGESTED_CHARSETS = ("utf-8", "gbk", "latin-1")


def undecodable_hint(charset: str) -> str:
    examples = ", ".join(f"/charset {name}" for name in _SUGGESTED_CHARSETS if name != charset)
    return (
        f"*** Your input is not valid {charset}; type /charset NAME to use "
        f"your terminal's encoding (e.g. {examples})"
    )


def wrong_protocol(kind: str, host: str, port: int) -> str:
    article = "an" if kind[0] in "AEFHILMNORSX" else "a"  # as the letters are spoken: an HTTP, a TLS
    return (
        f"This is chatd, a telnet chat server, not {article} {kind} server. "
        f"Connect with: telnet {host} {port}"
    )


def operator_now() -> str:
    return "*** You are now an operator"


def kicked(by: str, reason: str) -> str:
    return f"*** You were kicked by {by}" + (f" ({reason})" if reason else "")


def banned(address: str, minutes: float) -> str:
    return f"*** Banned {address} " + ("until restart" if minutes == 0 else f"for {minutes:g} minutes")


def unbanned(address: str) -> str:
    return f"*** Unbanned {address}"


def bans(shown: list[str]) -> str:
    return f"*** Bans: {', '.join(shown)}" if shown else "*** No bans"


def contact_lost() -> str:
    return "*** Lost contact with the rest of the chat; retrying"


def contact_restored(gap: bool) -> str:
    return "*** Back in contact with the rest of the chat" + (
        "; some of what was said elsewhere meanwhile is lost" if gap else "")


def shutting_down() -> str:
    return "*** Server shutting down"


def login_timeout(seconds: float) -> str:
    return error(f"no nickname chosen within {seconds:g} s; closing")


def idle_timeout(seconds: float) -> str:
    return error(f"no input for {seconds:g} s; closing")


def line_too_long(max_bytes: int) -> str:
    return error(f"line too long (max {max_bytes} bytes)")


HELP = (
    "*** Commands:",
    "***   TEXT or b:TEXT                     say TEXT in your current channel",
    "***   /me TEXT                           act: everyone sees * yournick TEXT",
    "***   /msg NICK TEXT or c:NICK:TEXT      private message to NICK",
    "***   /join NAME [KEY]                   join (or create) #NAME and talk there (KEY: if it has one)",
    "***   /msg #NAME TEXT                    say TEXT in #NAME, one of your channels",
    "***   /part [NAME] [REASON]              leave #NAME (or your current channel)",
    "***   /channels or /rooms                the channels there are",
    "***   /topic [TEXT]                      show or set the channel's topic (/topic - clears it)",
    "***   /list, /who, /names or l           who is online (/list NAME: who is in #NAME)",
    "***   /nick NEW or n:NEW                 change your nickname",
    "***   /charset [NAME]                    show or set your encoding (utf-8, gbk, big5, latin-1, ...)",
    "***   /quit [REASON], quit or byebye     leave",
    "***   /mode [#NAME] [+k KEY|+l N|+imst]  show or change a channel's modes (its operators: @)",
    "***   /op, /deop, /voice, /devoice NICK  give or take @ (operator) or + (may speak when +m)",
    "***   /kick #NAME NICK [REASON]          put NICK out of #NAME (its operators)",
    "***   /ban #NAME MASK, /unban, /bans     a channel's bans: NICK, *!*@ADDRESS ... (its operators)",
    "***   /invite NICK [#NAME]               invite NICK into #NAME (past +i, a key or a ban)",
    "***   /away [TEXT], /whois NICK          mark yourself away (or back); what there is to know of NICK",
    "***   /help or help                      this list",
    "***   //TEXT                             say a line that starts with /",
)

# Shown only on a server with moderation (--oper-password-file), where they can work.
OPERATOR_HELP = (
    "***   /oper PASSWORD                     become an operator of the server",
    "***   /kick NICK [REASON]                server operators: disconnect NICK",
    "***   /ban NICK|ADDRESS [MINUTES]        server operators: ban an address (default 60, 0: until restart)",
    "***   /unban ADDRESS, /bans              server operators: lift a ban, list the bans",
)


# Shown only where accounts can be kept (not with --no-store).
ACCOUNT_HELP = (
    "***   /register PASSWORD                 keep your nickname for you (8 characters at least)",
    "***   /identify [NICK] PASSWORD          prove a registered nickname is yours (NICK: become it)",
    "***   /password OLD NEW                  change your password",
    "***   /unregister PASSWORD               free your nickname",
    "***   /mentions                          the lines that named you while you were away",
)
HISTORY_HELP = "***   /history [N]                       the channel's last N lines (default 50)"


def motd(lines: Iterable[str]) -> list[str]:
    """The message of the day (--motd-file), after the hello."""
    return [f"*** {line}" for line in lines]


def help_lines(moderation: bool, accounts: bool = False) -> tuple[str, ...]:
    """/help: every command; the operators' ones only where moderation is on, accounts' where they are kept."""
    return HELP + ((HISTORY_HELP, *ACCOUNT_HELP) if accounts else ()) + (OPERATOR_HELP if moderation else ())


def when(at: float) -> str:
    """A time that may be days ago, in the server's local time: "Dec 05 14:02"."""
    return time.strftime("%b %d %H:%M", time.localtime(at))


def times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def unencrypted_password(host: str, port: int) -> str:
    """After a password went over a plain connection where TLS was there to carry it."""
    return (f"*** This connection is not encrypted: others on the network could read that password. "
            f"For a private one: openssl s_client -quiet -connect {host}:{port}")


def password_wanted(nick: str) -> str:
    return f"*** {nick} is registered; password:"


def account_lines(reply: object, lobby: str) -> list[str] | None:
    """The lines of the core's replies about accounts, notes, mentions and history; None for any other."""
    match reply:
        case replies.PasswordWanted(nick):
            return [password_wanted(nick)]
        case replies.GuestNickname(wanted, nick):
            return [f"*** {wanted} is registered: you are {nick} until you /identify {wanted} PASSWORD"]
        case replies.Identified(nick):
            return [f"*** You are identified as {nick}"]
        case replies.Registered(nick):
            return [f"*** {nick} is registered to you now: from now on, choosing it asks for your password"]
        case replies.PasswordChanged(nick):
            return [f"*** Your password for {nick} is changed"]
        case replies.Unregistered(nick):
            return [f"*** {nick} is not registered any more"]
        case replies.NoteKept(to):
            return [f"*** {to} is away; they get your message when they log in"]
        case replies.NotesWhileAway(notes):
            count = len(notes)
            return [f"*** {count} message{'' if count == 1 else 's'} while you were away:",
                    *(f"[{when(note.at)}] {private_to_recipient(note.sender, note.text)}" for note in notes)]
        case replies.MentionsWhileAway(counts):
            return [f"*** You were mentioned {times(count)} in {channel} since you left (/mentions lists them)"
                    for channel, count in counts]
        case replies.MentionList(events):
            if not events:
                return ["*** No mentions since you left"]
            return [f"*** Mentioned {times(len(events))} since you left:",
                    *(f"[{when(item.at)}] {event(item, None, lobby)}" for item in events), "*** End of mentions"]
        case replies.HistoryShown(channel, events):
            if not events:
                return [f"*** No history kept for {channel}"]
            return [f"*** History of {channel} ({len(events)} line{'' if len(events) == 1 else 's'}):",
                    *(f"[{when(item.at)}] {event(item, channel, lobby)}" for item in events), "*** End of history"]
        case replies.HistoryNotKept():
            return ["*** History is not being saved: the server cannot write its store (what is said still "
                    "reaches everyone online)"]
        case replies.HistoryKeptAgain():
            return ["*** History is saved again"]
        case replies.Unread():
            return []  # the web page's: telnet shows no unread counts
    return None


def history_lines(recent: tuple[Event, ...], current: str | None, lobby: str) -> list[str]:
    """
    A channel's recent messages, for a user who joins it; nothing at all
    when there are none.  Times are the server's local time.

        *** Recent messages:
        [14:02] <alice> hi
        *** End of recent messages
    """
    if not recent:
        return []
    shown = [f"[{time.strftime('%H:%M', time.localtime(item.at))}] {event(item, current, lobby)}" for item in recent]
    return ["*** Recent messages:", *shown, "*** End of recent messages"]


def whois_line(user: replies.UserInfo) -> str:
    parts = [f"*** {user.nick}" + (f" ({user.realname})" if user.realname else "")]
    parts.append("in " + " ".join(user.channels) if user.channels else "in no channel")
    if user.node:
        parts.append(f"on {user.node}")
    if user.away:
        parts.append(f"away: {user.away}")
    if not user.node:
        parts.append(f"idle {_duration(user.idle_seconds)}; on since {when(user.signon)}")
    if user.account:
        parts.append("identified")
    if user.operator:
        parts.append("an operator of the server")
    if user.bot:
        parts.append("a bot")
    return "; ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def channel_list(channels: tuple[replies.ChannelInfo, ...]) -> list[str]:
    listed = ", ".join(f"{info.name} ({info.count})" for info in channels)
    count = len(channels)
    return [f"*** {count} channel{'' if count == 1 else 's'}: {listed}",
            *(f"*** {info.name}: {info.topic}" for info in channels if info.topic)]


def reply_lines(reply: object, lobby: str) -> list[str]:
    """The lines of one of the core's replies."""
    if isinstance(reply, str):  # a line of the telnet front door's own (the greeting, the prompt): the most common
        return [reply]
    match reply:
        case replies.LoggedIn(nick, channel, recent):
            return [hello(nick), *history_lines(recent, channel, lobby)]
        case replies.ChannelJoined(channel, count, topic, recent):
            return [f"*** You joined {channel} ({users(count)})",
                    *([f"*** Topic of {channel}: {topic}"] if topic else []),
                    *history_lines(recent, channel, lobby)]
        case replies.NowTalkingIn(channel):
            return [f"*** Now talking in {channel}"]
        case replies.ChannelParted(channel, current):
            return [f"*** You left {channel}; " + (f"now talking in {current}" if current is not None
                                                   else "you are in no channel now (/join one)")]
        case replies.UserList(nicks):
            return [user_list(nicks)]
        case replies.ChannelMembers(channel, nicks):
            ordered = sorted(nicks, key=lambda nick: (nick.lstrip("@+").casefold(), nick))
            return [f"*** {users(len(ordered))} in {channel}: {', '.join(ordered)}"]
        case replies.ChannelList(channels):
            return channel_list(channels)
        case replies.TopicShown(channel, topic):
            return [f"*** Topic of {channel}: {topic}" if topic else f"*** {channel} has no topic"]
        case replies.ModesShown(channel, modes, arguments):
            return [f"*** Modes of {channel}: {' '.join((modes, *arguments))}"]
        case replies.MaskList(channel, kind, entries):
            what = LIST_NAMES[kind]
            if not entries:
                return [f"*** {channel} has no {what}"]
            return [f"*** {what.capitalize()} of {channel}: "
                    + ", ".join(f"{mask} ({by}, {when(at)})" for mask, by, at in entries)]
        case replies.AwayChanged(away):
            return ["*** You are marked away" if away else "*** You are back"]
        case replies.IsAway(nick, text):
            return [f"*** {nick} is away: {text}"]
        case replies.UserInfo():
            return [whois_line(reply)]
        case replies.Inviting(nick, channel):
            return [f"*** You invited {nick} into {channel}"]
        case replies.InvitedTo(by, channel):
            return [f"*** {by} invites you into {channel} (/join {channel})"]
        case replies.PrivateSent(to, text):
            return [private_to_sender(to, text)]
        case replies.PrivateReceived(sender, text, notice):
            return [f"-{sender}- {text}" if notice else private_to_recipient(sender, text)]
        case replies.Bye():
            return [bye()]
        case replies.OperatorNow():
            return [operator_now()]
        case replies.KickedOut(by, reason):
            return [kicked(by, reason)]
        case replies.BanAdded(address, minutes):
            return [banned(address, minutes)]
        case replies.BanLifted(address):
            return [unbanned(address)]
        case replies.BanList(shown):
            return [bans(list(shown))]
        case replies.Error(reason, code):
            return [error(_IN_TELNET_WORDS.get(code, reason))]
        case replies.ContactLost():
            return [contact_lost()]
        case replies.ContactRestored(gap):
            return [contact_restored(gap)]
    lines = account_lines(reply, lobby)
    if lines is None:
        raise TypeError(f"not a reply: {reply!r}")
    return lines
