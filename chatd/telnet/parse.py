"""
The telnet front door's syntax: one clean line of text -> one command.  Pure.

What a user can type (command words are case-insensitive, short forms too):

    TEXT, b:TEXT            Say        to the current channel
    //TEXT                  Say        the line "/TEXT"
    /me TEXT                Act        action
    /msg NICK TEXT          Msg        private message
    c:NICK:TEXT             Msg
    /msg #CHANNEL TEXT      Say        to a channel you are in, without switching to it
    /join NAME [KEY]        Join       join (or create) #NAME and talk there (KEY: a +k channel's)
    /part [NAME] [REASON]   Part       leave #NAME (the current channel when NAME is left out)
    /topic [TEXT | -]       Topic      show, set or (-) clear the current channel's topic
    /channels, /rooms       Channels   the channels there are
    /list /who /names l     Names      who is online; /list NAME: who is in #NAME
    /nick NEW, n:NEW        Nick       rename (or, before logging in, choose)
    /quit [REASON]          Quit       leave; bare `quit` and `byebye` too
    /help, help             Help       (this front door's own)
    /charset [NAME]         Charset    (this front door's own) show or set this connection's encoding
    /mode [#CH] [MODES ARGS]  Mode     show or change a channel's modes (#CH: the current one if left out)
    /op /deop /voice /devoice [#CH] NICK ...  Mode   +o, -o, +v, -v (channel operators)
    /kick #CH NICK [REASON] KickFrom   (channel operators) put NICK out of #CH
    /ban #CH MASK, /unban #CH MASK, /bans #CH  Mode   +b, -b, b: a channel's bans
    /invite NICK [#CH]      Invite     invite NICK into #CH (past +i, +k, +l and +b)
    /away [TEXT]            Away       mark yourself away (why: TEXT), or back
    /whois NICK             Whois      what there is to know of NICK
    /oper PASSWORD          Oper       become an operator (of the server)
    /kick NICK [REASON]     Kick       (server operators) disconnect a user
    /ban NICK|ADDR [MIN]    Ban        (server operators) ban an address, 0 minutes: until restart
    /unban ADDRESS          Unban      (server operators)
    /bans                   Bans       (server operators) list the bans
    /register PASSWORD      Register   keep your nickname for you
    /identify [NICK] PASSWORD  Identify  prove you own a registered nickname (NICK: take it)
    /password OLD NEW       ChangePassword
    /unregister PASSWORD    Unregister
    /history [N]            History    the current channel's last N lines (default 50)
    /mentions               Mentions   the lines that named you while you were away
    anything else /...      Invalid    (this front door's own) with the reason to show

Everything but Help, Charset and Invalid is a protocol-neutral command of
chatd.core.commands.
"""

from __future__ import annotations

from attrs import frozen

from chatd.core.commands import (
    DEFAULT_BAN_MINUTES,
    Act,
    Away,
    Ban,
    Bans,
    ChangePassword,
    Channels,
    Command,
    History,
    Identify,
    Invite,
    Join,
    Kick,
    KickFrom,
    Mentions,
    Mode,
    Msg,
    Names,
    Nick,
    Oper,
    Part,
    Quit,
    Register,
    Say,
    Topic,
    Unban,
    Unregister,
    Whois,
)


@frozen
class Help:
    pass


@frozen
class Charset:
    name: str | None


@frozen
class Invalid:
    """A line that looks like a command but is not a usable one."""

    reason: str


LineCommand = Command | Help | Charset | Invalid

# What /history shows when it is not told how many lines.
DEFAULT_HISTORY_LINES = 50

# Whole lines that are commands by themselves, without a slash.
_BARE_WORDS: dict[str, LineCommand] = {
    "l": Names(),
    "quit": Quit(),
    "byebye": Quit(),
    "help": Help(),
}


def parse_line(line: str) -> LineCommand | None:
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


def _parse_slash_command(text: str) -> LineCommand:
    word, _, argument = text.partition(" ")
    argument = argument.strip()
    word = word.casefold()
    if word == "me":
        return Act(argument) if argument else Invalid("usage: /me TEXT")
    if word == "msg":
        nick, _, message = argument.partition(" ")
        if nick.startswith("#"):
            message = message.strip()
            return Say(message, nick) if message else Invalid("usage: /msg #CHANNEL TEXT")
        return _msg(nick, message, usage="/msg NICK TEXT")
    if word in ("list", "who", "names"):
        return Names(argument.split()[0]) if argument else Names()
    if word == "join":
        name, _, key = argument.partition(" ")
        return Join(name, key.strip()) if name else Invalid("usage: /join NAME [KEY]")
    if word == "mode":
        channel, words = _channel_first(argument)
        return Mode(channel, words)
    if word in _RANK_CHANGES:
        channel, nicks = _channel_first(argument)
        if not nicks:
            return Invalid(f"usage: /{word} [#CHANNEL] NICK ...")
        sign, letter = _RANK_CHANGES[word]
        return Mode(channel, (sign + letter * len(nicks), *nicks))
    if word == "away":
        return Away(argument)
    if word == "whois":
        return Whois(argument.split()[0]) if argument else Invalid("usage: /whois NICK")
    if word == "invite":
        nick, _, channel = argument.partition(" ")
        return Invite(nick, channel.strip() or None) if nick else Invalid("usage: /invite NICK [#CHANNEL]")
    if word in ("kick", "ban", "unban", "bans") and argument.startswith("#"):
        return _channel_moderation(word, argument)
    if word == "part":
        channel, _, reason = argument.partition(" ")
        return Part(channel or None, reason.strip())
    if word == "topic":
        return Topic(None, "" if argument == "-" else argument or None)
    if word in ("channels", "rooms"):
        return Channels()
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
    if word == "register":
        return Register(argument) if argument else Invalid("usage: /register PASSWORD")
    if word == "identify":
        return Identify(argument) if argument else Invalid("usage: /identify [NICK] PASSWORD")
    if word == "password":
        old, _, new = argument.partition(" ")
        return ChangePassword(old, new.strip()) if new.strip() else Invalid("usage: /password OLD NEW")
    if word == "unregister":
        return Unregister(argument) if argument else Invalid("usage: /unregister PASSWORD")
    if word == "history":
        if argument and not argument.isdigit():
            return Invalid("usage: /history [N]")
        return History(int(argument) if argument else DEFAULT_HISTORY_LINES)
    if word == "mentions":
        return Mentions()
    return Invalid(f"unknown command /{word} (try /help)")


# /op and its kin: the mode change each stands for.
_RANK_CHANGES = {"op": ("+", "o"), "deop": ("-", "o"), "voice": ("+", "v"), "devoice": ("-", "v")}


def _channel_first(argument: str) -> tuple[str | None, tuple[str, ...]]:
    """A channel named first (else None: the current one), and the words after it."""
    words = tuple(argument.split())
    if words and words[0].startswith("#"):
        return words[0], words[1:]
    return None, words


def _channel_moderation(word: str, argument: str) -> LineCommand:
    """/kick #CH NICK [REASON], /ban #CH MASK, /unban #CH MASK, /bans #CH: a channel operator's."""
    channel, _, rest = argument.partition(" ")
    target, _, reason = rest.strip().partition(" ")
    if word == "bans":
        return Mode(channel, ("b",))
    if not target:
        return Invalid(f"usage: /{word} #CHANNEL {'NICK [REASON]' if word == 'kick' else 'MASK'}")
    if word == "kick":
        return KickFrom(channel, target, reason.strip())
    return Mode(channel, ("+b" if word == "ban" else "-b", target))


def _ban(argument: str) -> LineCommand:
    target, _, minutes = argument.partition(" ")
    minutes = minutes.strip()
    if not target or (minutes and not minutes.isdigit()):
        return Invalid("usage: /ban NICK|ADDRESS [MINUTES] (0: until restart)")
    return Ban(target, float(minutes) if minutes else DEFAULT_BAN_MINUTES)


def _nick(argument: str) -> LineCommand:
    argument = argument.strip()
    return Nick(argument) if argument else Invalid("usage: /nick NEWNICK")


def _msg(nick: str, text: str, usage: str) -> LineCommand:
    nick, text = nick.strip(), text.strip()
    if not nick or not text:
        return Invalid(f"usage: {usage}")
    return Msg(nick, text)
