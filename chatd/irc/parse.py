"""
An IRC line -> commands for the chat, or for this front door.  Pure.

The IRC front door's syntax (RFC 1459 and 2812, as current clients speak
them), parsed by twisted.words.protocols.irc.parsemsg.  A line can stand for
several commands (`JOIN #a,#b`), so `parse_line` returns a list.  Commands
that belong to the connection (registration, PING, WHO ...) are this
module's own values; the rest are the core's.
"""

from __future__ import annotations

from datetime import datetime, timezone

from attrs import field, frozen
from twisted.words.protocols.irc import parsemsg

from chatd.core import commands
from chatd.core.commands import Command
from chatd.core.nicknames import MAX_REALNAME_CHARS
from chatd.core.text import clean


@frozen
class TagMsg:
    """IRCv3 TAGMSG: tags without a message (typing notices); chatd relays no client tags, and answers none."""

    target: str


@frozen
class Cap:
    subcommand: str  # LS, LIST, REQ, END ... (upper case)
    argument: str = ""


@frozen
class Pass:
    password: str = field(repr=False)


@frozen
class Authenticate:
    """SASL (IRCv3): a mechanism, then the client's data in base64 ("+": empty, "*": abort)."""

    argument: str = field(repr=False)


@frozen
class NickServ:
    """A line for NickServ (`/msg NickServ IDENTIFY pw`), which chatd answers itself."""

    text: str = field(repr=False)


@frozen
class User:
    username: str
    realname: str


@frozen
class Ping:
    token: str


@frozen
class Pong:
    token: str


@frozen
class PartAll:
    """JOIN 0: leave every channel."""


@frozen
class Who:
    mask: str
    fields: str = ""  # WHOX's: "%cuhnfar,TOKEN" without the %; "": a plain WHO


@frozen
class Whois:
    nick: str


@frozen
class Monitor:
    """IRCv3 MONITOR: + (watch), - (stop), C (clear), L (list) or S (status), and the nicknames."""

    action: str
    nicks: tuple[str, ...] = ()


@frozen
class Whowas:
    nick: str  # "": none given
    count: int = 0  # 0 or less: every one kept


@frozen
class UserMode:
    """MODE of a nickname: a user's own modes (a channel's are the core's commands.Mode)."""

    target: str
    change: str  # "" asks for the modes


@frozen
class ListChannels:
    names: tuple[str, ...] = ()  # LIST #a,#b: those only; (): every channel
    # ELIST's conditions, each to hold: a mask (M), !mask (N), <N or >N members (U).
    conditions: tuple[str, ...] = ()


@frozen
class Ison:
    """Which of these nicknames are online (irssi's and HexChat's notify lists ask this way)."""

    nicks: tuple[str, ...]


@frozen
class Userhost:
    nicks: tuple[str, ...]  # at most five


@frozen
class ServerQuery:
    """TIME, VERSION, INFO or MOTD: about this server."""

    command: str


@frozen
class Away:
    text: str  # "": back


@frozen
class Quietly:
    """
    A NOTICE's command: carried out, but never answered with an error, and a
    private one only to a user online (no note is kept): RFC 2812 3.3.2,
    automatic replies must never be sent in answer to a NOTICE, or bots loop.
    """

    command: commands.Notice | commands.Msg


@frozen
class NeedMoreParams:
    command: str


@frozen
class NamesOf:
    """NAMES of several channels: one 366 ends them all."""

    channels: tuple[str, ...]
    asked: str  # as the client wrote them, for the 366


@frozen
class TooManyTargets:
    """A target of PRIVMSG past MAX_TARGETS: not reached."""

    target: str


@frozen
class Invitations:
    """INVITE alone: the channels one is invited into."""


@frozen
class Refused:
    """A command IRCv3's standard replies refuse: FAIL `command` `code` [`context`] :`text`."""

    command: str
    code: str
    context: str = ""
    text: str = ""


@frozen
class Help:
    """HELP or HELPOP, and its subject ("": the index)."""

    subject: str = ""


@frozen
class NoRecipient:
    command: str


@frozen
class NoTextToSend:
    pass


@frozen
class Unknown:
    command: str


IrcCommand = (Refused | Invitations | NamesOf | TooManyTargets | Help | Monitor | Whowas | TagMsg | Cap | Pass | Authenticate | NickServ | User | Ping | Pong | PartAll | Who | Whois | UserMode | ListChannels
              | Ison | Userhost | ServerQuery | Quietly | Away | NeedMoreParams
              | NoRecipient | NoTextToSend | Unknown)
Parsed = Command | IrcCommand

# Commands that need this many parameters at least.
_MINIMUM = {"NICK": 1, "USER": 4, "JOIN": 1, "PART": 1, "TOPIC": 1, "KICK": 2, "KILL": 1, "INVITE": 2, "OPER": 2,
            "PING": 1,
            "WHOIS": 1, "MODE": 1, "CAP": 1, "PASS": 1, "AUTHENTICATE": 1, "ISON": 1, "USERHOST": 1}


_TAG_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


def split_tags(line: str) -> tuple[dict[str, str], str]:
    """An IRCv3 line's message tags (`@label=1;+draft/reply=x CMD ...`), unescaped, and the line after them."""
    if not line.startswith("@"):
        return {}, line
    head, _, rest = line[1:].partition(" ")
    tags = {}
    for tag in head.split(";"):
        name, _, value = tag.partition("=")
        if name:
            tags[name] = _unescape(value)
    return tags, rest.lstrip(" ")


def _unescape(value: str) -> str:
    out, escaped = [], False
    for character in value:
        if escaped:
            out.append(_TAG_UNESCAPES.get(character, character))
            escaped = False
        elif character == "\\":
            escaped = True
        else:
            out.append(character)
    return "".join(out)


def parse_line(line: str) -> list[Parsed]:
    """The commands of one line (without its line end); [] for an empty line."""
    said = _said(line)
    return [said] if said is not None else _parsed(line)


def _said(line: str) -> commands.Say | None:
    """
    Most lines a chat reads, `PRIVMSG #channel :plain text`, read in one
    step: the Say that parsemsg and `_message` would make of it, or None for
    any other line (which they read).  Only when the channel is one plain
    word (no whitespace, no list of targets) and the text is printable (no
    cleaning to do, and not CTCP, which begins with a control character), so
    the two ways cannot differ.
    """
    if not line.startswith("PRIVMSG #"):
        return None
    target, colon, text = line[8:].partition(" :")
    if (colon and text and not text.isspace() and text.isprintable()
            and target.isprintable() and " " not in target and "," not in target):
        return commands.Say(text, target)
    return None


def _parsed(line: str) -> list[Parsed]:
    """Any line's commands, read by parsemsg."""
    if not line.strip():
        return []
    try:
        _, command, params = parsemsg(line)
    except (IndexError, ValueError):
        return []
    command = command.upper()
    if command == "INVITE" and not params:
        return [Invitations()]
    if len(params) < _MINIMUM.get(command, 0):
        return [NeedMoreParams(command)]
    match command:
        case "PRIVMSG" | "NOTICE":
            return _message(command, params)
        case "TAGMSG":
            return [TagMsg(params[0])] if params else [NeedMoreParams(command)]
        case "JOIN":
            if params[0] == "0":
                return [PartAll()]
            keys = params[1].split(",") if len(params) > 1 else []
            return [commands.Join(name, keys[index] if index < len(keys) else "")
                    for index, name in enumerate(params[0].split(",")) if name]
        case "PART":
            reason = clean(params[1], keep_formatting=True) if len(params) > 1 else ""
            return [commands.Part(name, reason) for name in params[0].split(",") if name]
        case "NICK":
            return [commands.Nick(params[0])]
        case "TOPIC":
            return [commands.Topic(params[0], clean(params[1], keep_formatting=True) if len(params) > 1 else None)]
        case "NAMES":
            names = [name for name in params[0].split(",") if name][:MAX_TARGETS] if params else []
            if len(names) > 1:
                return [NamesOf(tuple(names), params[0])]
            return [commands.Names(names[0])] if names else [commands.Names()]
        case "LIST":
            asked = [item for item in params[0].split(",") if item] if params else []
            if any(item[0] in "!<>" or "*" in item or "?" in item for item in asked):
                return [ListChannels((), tuple(asked))]
            return [ListChannels(tuple(item for item in asked if item.startswith("#")))]
        case "ISON":
            return [Ison(tuple(nick for param in params for nick in param.split() if nick))]
        case "USERHOST":
            return [Userhost(tuple(nick for param in params for nick in param.split() if nick)[:5])]
        case "TIME" | "VERSION" | "INFO" | "MOTD" | "LUSERS" | "ADMIN":
            return [ServerQuery(command)]
        case "QUIT":
            return [commands.Quit(clean(params[0], keep_formatting=True) if params and params[0].strip() else "Quit")]
        case "OPER":
            return [commands.Oper(params[1])]
        case "KICK":
            return _kick(params)
        case "KILL":  # a server operator's: disconnect
            return [commands.Kick(params[0], clean(params[1], keep_formatting=True) if len(params) > 1 else "")]
        case "INVITE":
            return [commands.Invite(params[0], params[1])]
        case "CAP":
            return [Cap(params[0].upper(), params[1] if len(params) > 1 else "")]
        case "PASS":
            return [Pass(params[0])]
        case "AUTHENTICATE":
            return [Authenticate(params[0])]
        case "NICKSERV" | "NS":
            return [NickServ(" ".join(params))]
        case "USER" if not params[3].strip():
            return [NeedMoreParams(command)]
        case "USER":
            return [User(_username(params[0]), clean(params[3]).strip()[:MAX_REALNAME_CHARS])]
        case "PING":
            return [Ping(params[0])]
        case "PONG":
            return [Pong(params[0] if params else "")]
        case "WHO":
            fields = params[1][1:] if len(params) > 1 and params[1].startswith("%") else ""
            return [Who(params[0] if params else "*", fields)]
        case "MONITOR":
            if not params or params[0] not in ("+", "-", "C", "c", "L", "l", "S", "s"):
                return [NeedMoreParams(command)]
            nicks = tuple(nick for nick in params[1].split(",") if nick) if len(params) > 1 else ()
            return [Monitor(params[0].upper(), nicks)]
        case "WHOWAS":
            count = params[1] if len(params) > 1 else "0"
            return [Whowas(params[0] if params else "", int(count) if count.lstrip("-").isdigit() else 0)]
        case "WHOIS":
            return [Whois(params[-1])]  # WHOIS [server] nick
        case "MODE":
            if params[0].startswith("#"):
                return [commands.Mode(params[0], tuple(params[1:]))]
            return [UserMode(params[0], " ".join(params[1:]))]
        case "AWAY":
            return [Away(clean(params[0]) if params else "")]
        case "SETNAME":
            return [commands.SetRealName(params[0])] if params else [NeedMoreParams(command)]
        case "MARKREAD":
            return [_markread(params)]
        case "CHATHISTORY":
            return [_chathistory(params)]
        case "HELP" | "HELPOP":
            return [Help(params[0] if params else "")]
    return [Unknown(command)]


# The most targets of one PRIVMSG, NOTICE, KICK or NAMES (005's TARGMAX).
MAX_TARGETS = 4
# A user name as servers keep one: letters, digits and a little punctuation, at most USERLEN.
USERLEN = 10


def _username(given: str) -> str:
    """USER's user name, kept to what is safe in a `nick!user@host` mask ("" if nothing is)."""
    return "".join(character for character in given if character.isascii() and (character.isalnum()
                                                                               or character in "-_.[]{}|^"))[:USERLEN]


def _markread(params: list[str]) -> Parsed:
    """IRCv3 read-marker's MARKREAD TARGET [timestamp=YYYY-MM-DDThh:mm:ss.sssZ]."""
    if not params or not params[0]:
        return Refused("MARKREAD", "NEED_MORE_PARAMS", "", _MARKREAD_USAGE)
    if len(params) == 1:
        return commands.MarkRead(params[0])
    name, _, value = params[1].partition("=")
    when = _timestamp(value) if name == "timestamp" else None
    if when is None:
        return Refused("MARKREAD", "INVALID_PARAMS", params[0], _MARKREAD_USAGE)
    return commands.MarkRead(params[0], when)


_MARKREAD_USAGE = "MARKREAD TARGET [timestamp=YYYY-MM-DDThh:mm:ss.sssZ]"


def _timestamp(value: str) -> float | None:
    """IRCv3's timestamp (2026-12-07T10:00:00.000Z) as unix time; None if it is not one."""
    for form in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, form).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    return None


# The most lines one CHATHISTORY asks for (005's CHATHISTORY=): as many as a channel's history keeps.
MAX_CHATHISTORY = 1000
_CHATHISTORY_USAGE = "CHATHISTORY LATEST|BEFORE|AFTER|AROUND TARGET REF LIMIT, BETWEEN TARGET REF REF LIMIT, TARGETS"


def _reference(given: str, star: bool = False) -> tuple[str, float | str | None] | None:
    """A chathistory reference: timestamp=..., msgid=... (or "*" where `star`); None if it is not one."""
    if star and given == "*":
        return "*", None
    kind, _, value = given.partition("=")
    if kind == "timestamp":
        when = _timestamp(value)
        return None if when is None else (kind, when)
    if kind == "msgid" and value:
        return kind, value
    return None


def _chathistory(params: list[str]) -> Parsed:
    """IRCv3 draft/chathistory's CHATHISTORY, or why it is refused (FAIL CHATHISTORY ...)."""
    kind = params[0].upper() if params else ""
    wanted = {"LATEST": 3, "BEFORE": 3, "AFTER": 3, "AROUND": 3, "BETWEEN": 4, "TARGETS": 3}.get(kind)
    if wanted is None:
        return Refused("CHATHISTORY", "INVALID_PARAMS" if kind else "NEED_MORE_PARAMS", kind, _CHATHISTORY_USAGE)
    if len(params) < wanted + 1:
        return Refused("CHATHISTORY", "NEED_MORE_PARAMS", kind, _CHATHISTORY_USAGE)
    limit = int(params[wanted]) if params[wanted].isdigit() else -1
    if limit < 0:
        return Refused("CHATHISTORY", "INVALID_PARAMS", kind, "the limit is a number")
    limit = min(limit, MAX_CHATHISTORY)
    if kind == "TARGETS":
        start, end = _reference(params[1]), _reference(params[2])
        if start is None or end is None or start[0] != "timestamp" or end[0] != "timestamp":
            return Refused("CHATHISTORY", "INVALID_PARAMS", kind, "TARGETS takes two timestamps")
        return commands.ChatHistoryTargets(float(start[1] or 0), float(end[1] or 0), limit)
    first = _reference(params[2], star=kind == "LATEST")
    second = _reference(params[3]) if kind == "BETWEEN" else None
    if first is None or (kind == "BETWEEN" and second is None):
        return Refused("CHATHISTORY", "INVALID_PARAMS", kind, "a reference is timestamp=... or msgid=...")
    return commands.ChatHistory(kind, params[1], first, second, limit)


def _kick(params: list[str]) -> list[Parsed]:
    """KICK #a nick[,nick] [reason], or KICK #a,#b nick1,nick2 (each channel its user), as RFC 2812 3.2.8 has it."""
    channels, nicks = params[0].split(","), [nick for nick in params[1].split(",") if nick][:MAX_TARGETS]
    reason = clean(params[2], keep_formatting=True) if len(params) > 2 else ""
    if len(channels) == 1:
        return [commands.KickFrom(channels[0], nick, reason) for nick in nicks]
    return [commands.KickFrom(channel, nick, reason) for channel, nick in zip(channels, nicks)]


def _message(command: str, params: list[str]) -> list[Parsed]:
    """
    PRIVMSG and NOTICE: to a channel (a message, or a CTCP ACTION), or to a
    nick (a private message).  A NOTICE's are Quietly: never answered with
    an error, and nothing at all for a NOTICE with nowhere to go.
    """
    notice = command == "NOTICE"
    if not params:
        return [] if notice else [NoRecipient(command)]
    if len(params) < 2 or not params[1]:
        return [] if notice else [NoTextToSend()]
    text = params[1]
    if params[0].casefold() == "nickserv":  # chatd answers for it (chatd.irc.protocol)
        return [NickServ(text)] if command == "PRIVMSG" else []
    action = text.startswith("\x01ACTION ") or text == "\x01ACTION\x01"
    if action:
        text = text[len("\x01ACTION "):].rstrip("\x01")
    elif text.startswith("\x01"):
        return []  # other CTCP (VERSION, PING ...): not part of the chat
    text = clean(text, keep_formatting=True)  # bold and colours stay for IRC clients (chatd.core.text.plain)
    if not text.strip():
        return []
    targets = [target for target in params[0].split(",") if target]
    if notice:  # past MAX_TARGETS, silently not reached: a NOTICE is never answered
        return [Quietly(commands.Notice(text, target) if target.startswith("#") else commands.Msg(target, text, True))
                for target in targets[:MAX_TARGETS]]
    found: list[Parsed] = [TooManyTargets(target) for target in targets[MAX_TARGETS:]]
    for target in targets[:MAX_TARGETS]:
        if target.startswith("#"):
            found.append(commands.Act(text, target) if action else commands.Say(text, target))
        elif target:
            found.append(commands.Msg(target, f"* {text}" if action else text))
    return found
