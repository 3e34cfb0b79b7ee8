"""Line assembly, limits, decoding and editing (chatd.telnet.lineedit)."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chatd.core.text import clean
from chatd.telnet.lineedit import Echo, Line, LineEditor, LineTooLong, Undecodable


def fed(editor, data):
    return list(editor.feed(data))


def feed_all(editor, data, byte_by_byte=False):
    if not byte_by_byte:
        return fed(editor, data)
    items = []
    for i in range(len(data)):
        items.extend(fed(editor, data[i : i + 1]))
    return items


def lines(items):
    return [item.text for item in items if isinstance(item, Line)]


both_ways = pytest.mark.parametrize("byte_by_byte", [False, True], ids=["at-once", "byte-by-byte"])


@both_ways
def test_lines_are_split_at_lf_and_decoded(byte_by_byte):
    """Each LF ends a line; UTF-8 split anywhere decodes whole."""
    editor = LineEditor(4096, "utf-8")
    assert lines(feed_all(editor, "hi\n张三 here\n\npartial".encode(), byte_by_byte)) == ["hi", "张三 here", ""]
    assert editor.partial == "partial"


@both_ways
def test_backspace_and_delete_erase_whole_characters_for_every_client(byte_by_byte):
    """BS and DEL erase the last character, also a two-byte GBK one, without echo."""
    editor = LineEditor(4096, "gbk")
    data = "ab\b张三\x7fc\n".encode("gbk")
    assert feed_all(editor, data, byte_by_byte) == [Line("a张c")]


def test_erasing_an_empty_line_does_nothing():
    """BS on an empty line is ignored."""
    editor = LineEditor(4096, "utf-8")
    assert fed(editor, b"\b\b\x7fok\n") == [Line("ok")]


def test_echo_mode_echoes_keystrokes_and_erases_by_display_width():
    """In echo mode typed characters come back; erasing a wide character takes two columns."""
    editor = LineEditor(4096, "utf-8")
    editor.echo = True
    assert fed(editor, b"h") == [Echo("h")]
    assert fed(editor, "张".encode()) == [Echo("张")]
    assert fed(editor, b"\x7f") == [Echo("\b \b\b \b")]
    assert fed(editor, b"\x01\x1b") == []  # a control character is dropped, ESC starts a sequence
    assert fed(editor, b"[Di\n") == [Echo("i"), Echo("\r\n"), Line("hi")]


def test_a_line_of_exactly_the_limit_is_accepted():
    """max_line_bytes bytes before the line end is fine."""
    editor = LineEditor(64, "utf-8")
    assert fed(editor, b"x" * 64 + b"\n") == [Line("x" * 64)]


@both_ways
def test_an_overlong_line_is_dropped_whole_and_the_next_line_works(byte_by_byte):
    """One byte over: one LineTooLong, nothing of that line, and the next line intact."""
    editor = LineEditor(64, "utf-8")
    items = feed_all(editor, b"y" * 65 + b"more\nnext\n", byte_by_byte)
    assert items == [LineTooLong(), Line("next")]


def test_an_endless_line_does_not_grow_memory():
    """Without a line end, what is held stays under the limit."""
    editor = LineEditor(64, "utf-8")
    items = []
    for _ in range(1000):
        items += fed(editor, b"z" * 100)
    assert items == [LineTooLong()]
    assert editor.partial == ""
    assert fed(editor, b"\nok\n") == [Line("ok")]


def test_undecodable_bytes_become_replacement_characters_and_are_reported():
    """Bad UTF-8 never raises: U+FFFD in the text and an Undecodable item."""
    editor = LineEditor(4096, "utf-8")
    assert fed(editor, b"caf\xe9!\n") == [Undecodable(), Line("caf\ufffd!")]


def test_a_line_ending_inside_a_multibyte_character_is_reported():
    """A truncated character at the line end becomes U+FFFD, and the next line is clean."""
    editor = LineEditor(4096, "utf-8")
    truncated = "ab张".encode()[:-1]  # the line ends one byte short of 张
    assert fed(editor, truncated + b"\nok\n") == [Undecodable(), Line("ab\ufffd"), Line("ok")]


def test_charset_can_change_between_lines():
    """After set_charset, input is decoded in the new charset."""
    editor = LineEditor(4096, "utf-8")
    editor.set_charset("gbk")
    assert fed(editor, "你好\n".encode("gbk")) == [Line("你好")]


def test_erasing_reaches_back_into_earlier_reads():
    """BS erases characters that arrived in earlier reads, past empty pieces."""
    editor = LineEditor(4096, "utf-8")
    assert fed(editor, b"abc") == []
    assert fed(editor, b"\b") == []
    assert fed(editor, b"\b\bxy\b") == []
    assert editor.partial == "x"
    assert fed(editor, b"\b\b\bz\n") == [Line("z")]


@both_ways
@pytest.mark.parametrize(
    "keys, echoed, line",
    [
        (b"abc\x1b[D\x1b[DX\n", "abcX", "abcX"),  # arrow keys (ANSI)
        (b"ab\x1bOA\x1bOBc\n", "abc", "abc"),  # arrow keys (application mode)
        (b"a\x1b[15~\x1b[1;5Cb\n", "ab", "ab"),  # F5, Ctrl-Right
        (b"tab\there\n", "tab here", "tab here"),  # TAB is a space, as the others see it
        (b"hello\x15bye\n", "hello" + "\b \b" * 5 + "bye", "bye"),  # Ctrl-U
        (b"one two  \x17three\n", "one two  " + "\b \b" * 5 + "three", "one three"),  # Ctrl-W
        ("说 你好\x17们\n".encode(), "说 你好" + "\b \b" * 4 + "们", "说 们"),  # Ctrl-W over wide characters
        (b"\x15\x17\x7fok\n", "ok", "ok"),  # erasing nothing echoes nothing
    ],
)
def test_character_mode_editing_shows_the_typist_what_the_others_get(keys, echoed, line, byte_by_byte):
    """Arrow and function keys are dropped whole, Ctrl-U and Ctrl-W erase; the echo matches the line sent."""
    editor = LineEditor(4096, "utf-8")
    editor.echo = True
    items = feed_all(editor, keys, byte_by_byte)
    assert "".join(item.text for item in items if isinstance(item, Echo)) == echoed + "\r\n"
    assert lines(items) == [line]


def test_without_echo_the_erase_keys_and_escape_sequences_work_too():
    """A raw client that sends each key without asking for echo (PuTTY raw) gets the same editing."""
    editor = LineEditor(4096, "utf-8")
    assert fed(editor, b"hello\x15one two\x17\x1b[Dthree\n") == [Line("one three")]


def test_erasing_a_line_that_wrapped_clears_every_row_it_used():
    """On a 10-column terminal, 25 typed columns take three rows: an erase goes back up two rows and redraws."""
    editor = LineEditor(4096, "utf-8")
    editor.echo = True
    editor.columns = 10
    assert fed(editor, b"x" * 25) == [Echo("x" * 25)]
    assert editor.clear_partial() == "\r\x1b[2A\x1b[J"
    assert fed(editor, b"\x7f") == [Echo("\r\x1b[2A\x1b[J" + "x" * 24)]
    assert fed(editor, b"\x15") == [Echo("\r\x1b[2A\x1b[J")]
    assert fed(editor, b"0123456789") == [Echo("0123456789")]
    assert editor.clear_partial() == "\r\x1b[J"  # a full row: the cursor waits on its last column


def test_in_echo_mode_an_overlong_line_is_dropped_at_once_and_the_next_keys_start_a_new_line():
    """The error comes on a fresh row, and what is typed next is echoed and sent as usual."""
    editor = LineEditor(64, "utf-8")
    editor.echo = True
    assert fed(editor, b"q" * 60) == [Echo("q" * 60)]
    assert fed(editor, b"q" * 10) == [Echo("\r\n"), LineTooLong()]
    assert fed(editor, b"abc") == [Echo("abc")]
    assert fed(editor, b"\n") == [Echo("\r\n"), Line("abc")]


@both_ways
@pytest.mark.parametrize("echo", [False, True], ids=["line-mode", "echo-mode"])
@pytest.mark.parametrize(
    "typed, line",
    [
        ("\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b[31mred\x1b[0m \u202eevil", "red evil"),  # clear, home, title, colour
        ("a\x1b]0;title\x1b\\b\x1bP1$r\x1b\\c", "abc"),  # OSC and DCS ended by ST
        ("x\x9b31my\x9d0;t\x9cz", "xyz"),  # 8-bit CSI and OSC
        ("a\x1b(Bb\x1b#8c", "abc"),  # charset designation, DEC test
        ("a\x1b]0;unterminated", "a"),  # a control string runs to the line end
        ("a\x1b\u00e9b", "a\u00e9b"),  # ESC before a non-ASCII letter: only the ESC goes
    ],
)
def test_escape_sequences_go_whole_as_text_clean_removes_them(typed, line, echo, byte_by_byte):
    """Every sequence text.clean removes is dropped whole by the editor too, so none is left half as text."""
    editor = LineEditor(4096, "utf-8")
    editor.echo = echo
    items = feed_all(editor, typed.encode() + b"\n", byte_by_byte)
    assert [clean(text) for text in lines(items)] == [line]
    if echo:
        assert "".join(item.text for item in items if isinstance(item, Echo)) == line + "\r\n"


@given(st.text(alphabet=st.sampled_from("ab 张\t\x1b[]O0;P\\\x07\x9b\x9c\x9d\x01\u202e(#~m"), max_size=40))
def test_in_echo_mode_the_typist_sees_exactly_the_line_the_others_get(typed):
    """Any keys but erase keys: what is echoed is the line, and text.clean has nothing left to remove from it."""
    editor = LineEditor(4096, "utf-8")
    editor.echo = True
    items = fed(editor, typed.encode() + b"\n")
    (line,) = lines(items)
    assert "".join(item.text for item in items if isinstance(item, Echo)) == line + "\r\n"
    assert clean(line) == line


def test_a_read_of_whole_plain_lines_is_decoded_at_once():
    """A read of whole lines in line mode comes back as its lines, and the editor is left at a fresh line."""
    editor = LineEditor(64, "utf-8")
    assert editor.whole_lines("hi\n张三 here\n\nlast\n".encode()) == ["hi", "张三 here", "", "last"]
    assert lines(fed(editor, b"next\n")) == ["next"]


@pytest.mark.parametrize(
    "before, data, echo, charset",
    [
        (b"par", b"tial\n", False, "utf-8"),  # a line started in an earlier read
        (b"", b"hi\npartial", False, "utf-8"),  # ends inside a line
        (b"", b"hi\n", True, "utf-8"),  # a client in character mode: echo and keys
        (b"", b"a\x7fb\n", False, "utf-8"),  # an erase key
        (b"", b"a\x1b[Db\n", False, "utf-8"),  # an escape sequence
        (b"", b"ok\n" + b"x" * 65 + b"\n", False, "utf-8"),  # a line over the limit
        (b"x" * 65, b"\nok\n", False, "utf-8"),  # the end of a line over the limit
        (b"", b"caf\xe9\n", False, "utf-8"),  # not valid UTF-8
        (b"", "日本\n".encode("iso2022_jp"), False, "iso2022_jp"),  # a charset that keeps state across lines
        (b"", b"hi\n", False, "utf-8-sig"),  # and one that drops a BOM only at the start
    ],
    ids=["partial-before", "partial-after", "echo", "erase", "escape", "too-long", "discarding", "undecodable",
         "stateful-charset", "bom"],
)
def test_any_other_read_is_left_to_feed(before, data, echo, charset):
    """A read that the editor has more to do with than split and decode is not taken at once."""
    editor = LineEditor(64, charset)
    editor.echo = echo
    fed(editor, before)
    assert editor.whole_lines(data) is None


# Pieces of lines: plain text in several charsets, bytes invalid in some,
# control keys, a 40-byte run (two make a line over the limit of 64), and
# ISO-2022-JP's "日" whole, and cut so that it leaves its two-byte mode open
# at the end of the line (then "F|" decodes differently after it).
_PIECES = [b"a", b" ", "张".encode(), "张".encode("gbk"), b"\xe9", b"\x1b", b"\x7f", b"\t", b"x" * 40, b"/",
           b"\x1b$BF|\x1b(B", b"\x1b$BF|", b"F|"]


@given(
    before=st.sampled_from([b"", b"", b"", b"\xe5", b"\x1b[", b"x" * 70, b"ab"]),
    read=st.lists(st.lists(st.sampled_from(_PIECES), max_size=4).map(b"".join), min_size=1, max_size=4),
    charset=st.sampled_from(["utf-8", "gbk", "iso8859-1", "iso2022_jp"]),
    partial=st.booleans(),
)
@example(before=b"", read=[b"x" * 80], charset="utf-8", partial=False)
@example(before=b"", read=[b"\x1b$BF|", b"F|"], charset="iso2022_jp", partial=False)
@example(before=b"", read=[b"a", b"b"], charset="utf-8", partial=True)
def test_lines_read_at_once_are_exactly_the_lines_feed_yields(before, read, charset, partial):
    """Whenever a read is taken at once, its lines are what feeding it to the editor would have made of it, and nothing else."""
    data = b"\n".join(read) + (b"" if partial else b"\n")
    at_once, one_by_one = LineEditor(64, charset), LineEditor(64, charset)
    fed(at_once, before)
    fed(one_by_one, before)
    taken = at_once.whole_lines(data)
    if taken is not None:
        assert fed(one_by_one, data) == [Line(text) for text in taken]
        assert fed(at_once, b"next\n") == fed(one_by_one, b"next\n")  # and each is left where the other is
