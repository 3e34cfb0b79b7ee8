"""
Step 7 of the data path: every line a user can see, as text.  Pure.

The exact formats are part of the product: users' scripts and the tests rely
on them.  The transport adds CR LF to each line.

    *** Welcome to chatd on NAME. 2 users online.     on connect
    *** Choose a nickname:                            on connect, after a refusal
    *** Hello alice! Type /help for commands.         to a user who joined
    *** alice has joined (3 users online)             to everyone else
    <alice> TEXT                                      public message
    * alice TEXT                                      action (/me)
    *alice* TEXT                                      private message, to bob
    -> *bob* TEXT                                     private message, to alice
    *** 3 users online: alice, bob, carol             /list
    *** alice is now known as al                      rename, to everyone
    *** alice has left (REASON)                       to everyone else
    *** Bye!                                          to a user who quits
    *** Charset is now gbk                            /charset
    *** Commands: ...                                 /help: one line per command (HELP, OPERATOR_HELP)
    *** Error: REASON                                 every refusal
    *** Your input is not valid utf-8; ...            once, on undecodable input
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
    This is chatd, a telnet chat server, not an HTTP server. Connect with: telnet HOST PORT
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import frozen

# Events: what happened in the room, past tense.  The room sends them to
# members; later the transcript and the bus will record them as they are.


@frozen
class Joined:
    nick: str
    count: int


@frozen
class Said:
    nick: str
    text: str


@frozen
class Acted:
    nick: str
    text: str


@frozen
class Renamed:
    old: str
    new: str


@frozen
class Left:
    nick: str
    reason: str


Event = Joined | Said | Acted | Renamed | Left


def event(happened: Event) -> str:
    """The line everyone in the room sees for an event."""
    match happened:
        case Said(nick, text):
            return f"<{nick}> {text}"
        case Acted(nick, text):
            return f"* {nick} {text}"
        case Joined(nick, count):
            return f"*** {nick} has joined ({users_online(count)})"
        case Renamed(old, new):
            return f"*** {old} is now known as {new}"
        case Left(nick, reason):
            return f"*** {nick} has left ({reason})"
    raise TypeError(f"not an event: {happened!r}")


def users_online(count: int) -> str:
    return f"{count} user{'' if count == 1 else 's'} online"


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


def kick_reason(by: str, reason: str) -> str:
    """The reason the others see in `*** bob has left (...)`."""
    return f"Kicked by {by}" + (f": {reason}" if reason else "")


def banned(address: str, minutes: float) -> str:
    return f"*** Banned {address} " + ("until restart" if minutes == 0 else f"for {minutes:g} minutes")


def unbanned(address: str) -> str:
    return f"*** Unbanned {address}"


def bans(shown: list[str]) -> str:
    return f"*** Bans: {', '.join(shown)}" if shown else "*** No bans"


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
    "***   TEXT or b:TEXT                     say TEXT to everyone",
    "***   /me TEXT                           act: everyone sees * yournick TEXT",
    "***   /msg NICK TEXT or c:NICK:TEXT      private message to NICK",
    "***   /list, /who, /names or l           who is online",
    "***   /nick NEW or n:NEW                 change your nickname",
    "***   /charset [NAME]                    show or set your encoding (utf-8, gbk, big5, latin-1, ...)",
    "***   /quit [REASON], quit or byebye     leave",
    "***   /help or help                      this list",
    "***   //TEXT                             say a line that starts with /",
)

# Shown only on a server with moderation (--oper-password-file), where they can work.
OPERATOR_HELP = (
    "***   /oper PASSWORD                     become an operator",
    "***   /kick NICK [REASON]                operators: disconnect NICK",
    "***   /ban NICK|ADDRESS [MINUTES]        operators: ban an address (default 60, 0: until restart)",
    "***   /unban ADDRESS, /bans              operators: lift a ban, list the bans",
)


def help_lines(moderation: bool) -> tuple[str, ...]:
    """/help: every command, the operators' ones only where moderation is on."""
    return HELP + OPERATOR_HELP if moderation else HELP
