"""
Step 5 of the data path: one clean line of text -> one command.  Pure.

What a user can type (command words are case-insensitive, short forms too):

    TEXT, b:TEXT            Say        public message
    //TEXT                  Say        public message "/TEXT"
    /me TEXT                Act        action
    /msg NICK TEXT          Msg        private message
    c:NICK:TEXT             Msg
    /list /who /names l     List       who is online
    /nick NEW, n:NEW        Nick       rename (or, before joining, choose)
    /quit [REASON]          Quit       leave; bare `quit` and `byebye` too
    /help, help             Help
    /charset [NAME]         Charset    show or set this connection's encoding
    /oper PASSWORD          Oper       become an operator
    /kick NICK [REASON]     Kick       (operators) disconnect a user
    /ban NICK|ADDR [MIN]    Ban        (operators) ban an address, 0 minutes: until restart
    /unban ADDRESS          Unban      (operators)
    /bans                   Bans       (operators) list the bans
    anything else /...      Invalid    with the reason to show
"""

from __future__ import annotations

from attrs import frozen

DEFAULT_BAN_MINUTES = 60


@frozen
class Say:
    text: str


@frozen
class Act:
    text: str


@frozen
class Msg:
    nick: str
    text: str


@frozen
class List:
    pass


@frozen
class Nick:
    nick: str


@frozen
class Quit:
    reason: str = "Quit"


@frozen
class Help:
    pass


@frozen
class Charset:
    name: str | None


@frozen
class Oper:
    password: str


@frozen
class Kick:
    nick: str
    reason: str


@frozen
class Ban:
    target: str
    minutes: float


@frozen
class Unban:
    address: str


@frozen
class Bans:
    pass


@frozen
class Invalid:
    """A line that looks like a command but is not a usable one."""

    reason: str


Command = Say | Act | Msg | List | Nick | Quit | Help | Charset | Oper | Kick | Ban | Unban | Bans | Invalid

# Whole lines that are commands by themselves, without a slash.
_BARE_WORDS: dict[str, Command] = {
    "l": List(),
    "quit": Quit(),
    "byebye": Quit(),
    "help": Help(),
}


def parse_line(line: str) -> Command | None:
    """
    Return the command `line` asks for, or None for an empty line.

    `line` has already been cleaned (see chatd.text.clean).
    """
    line = line.rstrip()
    if not line.strip():
        return None
    bare = _BARE_WORDS.get(line.strip().casefold())
    if bare is not None:
        return bare
    if line.startswith("//"):
        return Say(line[1:])
    if line.startswith("/"):
        return _parse_slash_command(line[1:])
    prefix, colon, rest = line.partition(":")
    if colon:
        short = prefix.casefold()
        if short == "b":
            return Say(rest) if rest.strip() else None
        if short == "n":
            return _nick(rest)
        if short == "c":
            nick, colon, text = rest.partition(":")
            return _msg(nick, text if colon else "", usage="c:NICK:TEXT")
    return Say(line)


def _parse_slash_command(text: str) -> Command:
    word, _, argument = text.partition(" ")
    argument = argument.strip()
    word = word.casefold()
    if word == "me":
        return Act(argument) if argument else Invalid("usage: /me TEXT")
    if word == "msg":
        nick, _, message = argument.partition(" ")
        return _msg(nick, message, usage="/msg NICK TEXT")
    if word in ("list", "who", "names"):
        return List()
    if word == "nick":
        return _nick(argument)
    if word == "quit":
        return Quit(argument or "Quit")
    if word == "help":
        return Help()
    if word == "charset":
        return Charset(argument or None)
    if word == "oper":
        return Oper(argument) if argument else Invalid("usage: /oper PASSWORD")
    if word == "kick":
        nick, _, reason = argument.partition(" ")
        return Kick(nick, reason.strip()) if nick else Invalid("usage: /kick NICK [REASON]")
    if word == "ban":
        return _ban(argument)
    if word == "unban":
        return Unban(argument) if argument and " " not in argument else Invalid("usage: /unban ADDRESS")
    if word == "bans":
        return Bans()
    return Invalid(f"unknown command /{word} (try /help)")


def _ban(argument: str) -> Command:
    target, _, minutes = argument.partition(" ")
    minutes = minutes.strip()
    if not target or (minutes and not minutes.isdigit()):
        return Invalid("usage: /ban NICK|ADDRESS [MINUTES] (0: until restart)")
    return Ban(target, float(minutes) if minutes else DEFAULT_BAN_MINUTES)


def _nick(argument: str) -> Command:
    argument = argument.strip()
    return Nick(argument) if argument else Invalid("usage: /nick NEWNICK")


def _msg(nick: str, text: str, usage: str) -> Command:
    nick, text = nick.strip(), text.strip()
    if not nick or not text:
        return Invalid(f"usage: {usage}")
    return Msg(nick, text)
