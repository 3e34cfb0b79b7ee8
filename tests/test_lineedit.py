"""Line assembly, limits, decoding and editing (chatd.lineedit)."""

import pytest

from chatd.lineedit import Echo, Line, LineEditor, LineTooLong, Undecodable


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
    assert fed(editor, b"\x1b") == []  # controls are kept for the cleaner, not echoed
    assert fed(editor, b"i\n") == [Echo("i"), Echo("\r\n"), Line("h\x1bi")]


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
