"""Text cleaning (chatd.core.text), nickname and channel name rules (chatd.core.nicknames), charsets and widths."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.core.nicknames import (
    ChannelNameError,
    NicknameError,
    Registry,
    check_channel_name,
    check_nickname,
    skeletons,
)
from chatd.core.text import clean
from chatd.telnet.charset import lookup_charset
from chatd.telnet.lineedit import display_width


def is_control(char: str) -> bool:
    return (
        unicodedata.category(char) == "Cc"
        or char in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
    )


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("plain text", "plain text"),
        ("tab\there", "tab here"),
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b[2J\x1b[Hwiped", "wiped"),
        ("bell\x07 and nul\x00", "bell and nul"),
        ("\x1b]0;evil title\x07after", "after"),
        ("\x9b31mC1 CSI", "C1 CSI"),
        ("back\x08space\x7f", "backspace"),
        ("\u202eevil\u202c and \u2067iso\u2069", "evil and iso"),
        ("line\u2028sep", "linesep"),
        ("\x1bclone ESC", "lone ESC"),
        ("张三 says hi", "张三 says hi"),
        ("emoji 👍🏽 and zwj 👩\u200d💻", "emoji 👍🏽 and zwj 👩\u200d💻"),
    ],
)
def test_clean_removes_controls_and_escape_sequences(raw, expected):
    """Controls, whole ANSI sequences and bidi overrides are removed; text stays."""
    assert clean(raw) == expected


@given(st.text())
def test_clean_never_leaves_a_control_character(text):
    """Whatever text goes in, no control character comes out."""
    assert not any(is_control(char) for char in clean(text))


@pytest.mark.parametrize("nick", ["alice", "张三", "Zoë", "a", "x" * 24, "a1", "[bot]", "_x-y|z^{}", "देवनागरी"])
def test_valid_nicknames_are_accepted(nick):
    """Letters of any script, digits and _-[]{}|^ make a nickname."""
    assert check_nickname(nick) == unicodedata.normalize("NFC", nick)


def test_nickname_is_nfc_normalised():
    """A decomposed é and a composed é are the same nickname."""
    assert check_nickname("Zoe\u0301") == "Zo\u00e9"


@pytest.mark.parametrize(
    "nick, reason",
    [
        ("x" * 25, "nickname is too long (max 24 characters)"),
        ("1abc", "nickname may not start with a digit or -"),
        ("-abc", "nickname may not start with a digit or -"),
        ("al ice", "nickname may not contain spaces: use letters, digits and _-[]{}|^"),
        ("al@ice", "nickname may not contain '@': use letters, digits and _-[]{}|^"),
        ("Server", "nickname is reserved: Server"),
        ("CHATD", "nickname is reserved: CHATD"),
        ("", "nickname is empty"),
    ],
)
def test_invalid_nicknames_are_refused_with_a_reason(nick, reason):
    """Each broken rule has its own reason."""
    with pytest.raises(NicknameError) as refusal:
        check_nickname(nick)
    assert str(refusal.value) == reason


@given(st.text(alphabet=st.characters(max_codepoint=0x7f), max_size=30))
def test_an_ascii_name_is_checked_as_the_rules_say(name):
    """
    In an ASCII name (checked in one step), exactly letters, digits and the
    kind of name's punctuation are allowed, as in any other name: the first
    one that is not is named.
    """
    from chatd.core.nicknames import CHANNEL_PUNCTUATION, NICK_PUNCTUATION, _disallowed_character

    for punctuation in (NICK_PUNCTUATION, CHANNEL_PUNCTUATION):
        refused = next((char for char in name if not (char.isalnum() or char in punctuation)), None)
        named = _disallowed_character(name, punctuation)
        assert (named is None) == (refused is None)
        if refused is not None and refused.isprintable() and not refused.isspace():
            assert named == repr(refused)


@pytest.mark.parametrize(
    "name, canonical",
    [("utf-8", "utf-8"), ("UTF8", "utf-8"), ("gbk", "gbk"), ("GB18030", "gb18030"),
     ("big5", "big5"), ("latin-1", "iso8859-1"), ("shift_jis", "shift_jis")],
)
def test_usable_charsets_are_found(name, canonical):
    """Any ASCII-compatible text codec Python knows is usable."""
    assert lookup_charset(name) == canonical


@pytest.mark.parametrize("name", ["klingon", "utf-16", "utf-32", "rot13", "base64", "hex", ""])
def test_unusable_charsets_are_refused(name):
    """Unknown codecs, non-text codecs and codecs that do not keep ASCII are refused."""
    assert lookup_charset(name) is None


def test_display_width_counts_wide_characters_twice():
    """CJK characters take two terminal columns."""
    assert display_width("ab张三") == 6


@pytest.mark.parametrize(
    "one, other",
    [
        ("alice", "\u0430lice"),  # Cyrillic a
        ("Alice", "\u0410LICE"),  # Cyrillic A, in capitals
        ("paypal", "\u0440\u0430yp\u0430l"),  # Cyrillic r and a
        ("mary", "rnary"),  # rn for m
        ("bob", "b\u03bfb"),  # Greek omicron
        ("alice", "aIice"),  # capital I for l
        ("all", "a11"),  # ones for l
        ("bob", "b0b"),  # zero for o
        ("BOB", "B0B"),  # zero for O
        ("NICK", "\u039d\u0399\u0421\u039a"),  # Greek Nu, Iota, Cyrillic Es, Greek Kappa
        ("olga", "\u043el\u0261\u0430"),  # Cyrillic o, Latin script g, Cyrillic a
    ],
)
def test_look_alike_nicknames_share_a_skeleton(one, other):
    """The classic look-alike pairs, in either case: the two share a TR39 skeleton."""
    assert skeletons(one) & skeletons(other)
    assert skeletons(other) & skeletons(one.upper())


@pytest.mark.parametrize("one, other", [("alice", "alicia"), ("张三", "张四"), ("bob", "rob"), ("anna", "anne"), ("ivan", "iwan")])
def test_different_nicknames_have_different_skeletons(one, other):
    """Names that only share letters stay different."""
    assert not skeletons(one) & skeletons(other)


@pytest.mark.parametrize("raw, name", [("lab", "#lab"), ("#lab", "#lab"), ("#Лаборатория", "#Лаборатория"),
                                       ("#a.b-c_1", "#a.b-c_1"), ("#" + "x" * 32, "#" + "x" * 32), ("#实验室", "#实验室")])
def test_valid_channel_names_get_their_hash(raw, name):
    """# then letters of any script, digits and -_. ; the # is added when missing."""
    assert check_channel_name(raw) == name


@pytest.mark.parametrize("raw, reason", [
    ("#", "channel name is empty"),
    ("#" + "x" * 33, "channel name is too long (max 32 characters after #)"),
    ("#a b", "channel name may not contain spaces: use # then letters, digits and -_."),
    ("#a,b", "channel name may not contain ',': use # then letters, digits and -_."),
    ("##lab", "channel name may not contain '#': use # then letters, digits and -_."),
])
def test_invalid_channel_names_are_refused_with_a_reason(raw, reason):
    """Each invalid channel name is refused with a reason that says which rule it breaks."""
    with pytest.raises(ChannelNameError) as refused:
        check_channel_name(raw)
    assert str(refused.value) == reason


def test_registry_refuses_the_same_name_in_another_case_and_a_look_alike():
    """A held name clashes with itself in any case, and with names that look like it; the holder may keep it."""
    registry, alice = Registry(), object()
    registry.claim("#Lab", alice)
    assert registry.clash("#lab", object()) == "#lab"
    assert registry.clash("#1ab", object()) == "#Lab"  # 1 looks like l
    assert registry.clash("#lab", alice) is None
    assert registry.holder("#LAB") is alice
    registry.release("#Lab")
    assert registry.clash("#1ab", object()) is None and registry.holder("#lab") is None


def test_irc_formatting_can_be_kept_and_taken_out():
    """IRC's bold, colours (with their numbers), reset, italic, underline ... stay with keep_formatting, and plain() takes them out."""
    from chatd.core.text import plain

    sent = "\x02bold\x02 \x0304,12red\x03 \x1dit\x1d \x1fu\x0f \x0499AAFFhex\x07\x1b[31m"
    kept = clean(sent, keep_formatting=True)
    assert kept == "\x02bold\x02 \x0304,12red\x03 \x1dit\x1d \x1fu\x0f \x0499AAFFhex"
    assert plain(kept) == "bold red it u hex"
    assert plain("already plain") == "already plain"
    from chatd.core.text import has_formatting

    assert has_formatting("<bob> \x02hi\x02\r\n") and not has_formatting("<bob> hi\r\n<carol> ok\r\n")


@given(st.text(alphabet=st.characters(max_codepoint=0x40)), st.sampled_from([1, 100, 1000]))
def test_formatting_is_found_in_a_line_and_in_a_turns_many_lines(text, repeat):
    """has_formatting finds any of IRC's formatting codes, and nothing else, in short text and in long (its two ways)."""
    from chatd.core.text import _FORMATTING_CODES, has_formatting

    text *= repeat
    assert has_formatting(text) == any(character in _FORMATTING_CODES for character in text)
