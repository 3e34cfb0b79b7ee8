"""Parsing one line into a command (chatd.telnet.parse)."""

import pytest

from chatd.core.commands import Away, Ban, Channels, Whois, Invite, Join, Kick, KickFrom, Mode, Names, Part, Topic
from chatd.telnet.parse import (
    Act,
    Charset,
    Help,
    Invalid,
    Msg,
    Nick,
    Quit,
    Say,
    parse_line,
)


@pytest.mark.parametrize(
    "line, command",
    [
        ("hello there", Say("hello there")),
        ("b:hello", Say("hello")),
        ("B:hello", Say("hello")),
        ("//etc/passwd", Say("/etc/passwd")),
        ("/me waves", Act("waves")),
        ("/ME waves", Act("waves")),
        ("/msg bob hi there", Msg("bob", "hi there")),
        ("c:bob:hi: there", Msg("bob", "hi: there")),
        ("C:bob:hi", Msg("bob", "hi")),
        ("/list", Names()),
        ("/who", Names()),
        ("/NAMES", Names()),
        ("l", Names()),
        ("L", Names()),
        ("/nick al", Nick("al")),
        ("/NICK al", Nick("al")),
        ("n:al", Nick("al")),
        ("N:al", Nick("al")),
        ("/quit", Quit("Quit")),
        ("/quit gone fishing", Quit("gone fishing")),
        ("quit", Quit("Quit")),
        ("Quit", Quit("Quit")),
        ("byebye", Quit("Quit")),
        ("/help", Help()),
        ("help", Help()),
        ("HELP", Help()),
        ("/charset", Charset(None)),
        ("/charset gbk", Charset("gbk")),
        ("/frobnicate now", Invalid("unknown command /frobnicate (try /help)")),
        ("/me", Invalid("usage: /me TEXT")),
        ("/msg bob", Invalid("usage: /msg NICK TEXT")),
        ("/msg", Invalid("usage: /msg NICK TEXT")),
        ("c:bob", Invalid("usage: c:NICK:TEXT")),
        ("c:bob:", Invalid("usage: c:NICK:TEXT")),
        ("/nick", Invalid("usage: /nick NEWNICK")),
        ("n:", Invalid("usage: /nick NEWNICK")),
        ("x:not a prefix", Say("x:not a prefix")),
        ("quit now", Say("quit now")),
        ("trailing spaces   ", Say("trailing spaces")),
        ("/join lab", Join("lab")),
        ("/JOIN #Lab", Join("#Lab")),
        ("/join", Invalid("usage: /join NAME [KEY]")),
        ("/join #lab solder", Join("#lab", "solder")),
        ("/mode", Mode(None, ())),
        ("/mode #lab +k solder", Mode("#lab", ("+k", "solder"))),
        ("/mode +m", Mode(None, ("+m",))),
        ("/op bob carol", Mode(None, ("+oo", "bob", "carol"))),
        ("/deop #lab bob", Mode("#lab", ("-o", "bob"))),
        ("/voice bob", Mode(None, ("+v", "bob"))),
        ("/devoice bob", Mode(None, ("-v", "bob"))),
        ("/op", Invalid("usage: /op [#CHANNEL] NICK ...")),
        ("/kick #lab bob too loud", KickFrom("#lab", "bob", "too loud")),
        ("/kick #lab", Invalid("usage: /kick #CHANNEL NICK [REASON]")),
        ("/kick bob spam", Kick("bob", "spam")),
        ("/ban #lab *!*@10.0.0.7", Mode("#lab", ("+b", "*!*@10.0.0.7"))),
        ("/unban #lab bob", Mode("#lab", ("-b", "bob"))),
        ("/bans #lab", Mode("#lab", ("b",))),
        ("/ban bob 5", Ban("bob", 5.0)),
        ("/invite bob #lab", Invite("bob", "#lab")),
        ("/invite bob", Invite("bob", None)),
        ("/away gone fishing", Away("gone fishing")),
        ("/away", Away("")),
        ("/whois bob", Whois("bob")),
        ("/whois", Invalid("usage: /whois NICK")),
        ("/part", Part(None, "")),
        ("/part lab", Part("lab", "")),
        ("/part #lab off to eat", Part("#lab", "off to eat")),
        ("/msg #lab hi there", Say("hi there", "#lab")),
        ("/msg #lab", Invalid("usage: /msg #CHANNEL TEXT")),
        ("/topic", Topic(None, None)),
        ("/topic Soldering at 18:00", Topic(None, "Soldering at 18:00")),
        ("/topic -", Topic(None, "")),
        ("/channels", Channels()),
        ("/ROOMS", Channels()),
        ("/list lab", Names("lab")),
        ("/who #lab", Names("#lab")),
    ],
)
def test_lines_parse_into_commands(line, command):
    """Each documented form of each command parses, case-insensitively."""
    assert parse_line(line) == command


@pytest.mark.parametrize("line", ["", "   ", "b:", "b:   "])
def test_empty_lines_are_ignored(line):
    """An empty line (or an empty b: message) is no command at all."""
    assert parse_line(line) is None
