"""The exact lines users see (chatd.telnet.render, chatd.core.wire)."""

from hypothesis import given
from hypothesis import strategies as st

from chatd.telnet import render
from chatd.telnet.render import Acted, Joined, Left, Renamed, Said
from chatd.core.room import _runs_between
from chatd.core.wire import Batch, Outgoing, encode, writes_ascii_as_ascii


def test_event_lines():
    """Each room event has its documented format."""
    assert render.event(Said("alice", "hi")) == "<alice> hi"
    assert render.event(Acted("alice", "waves")) == "* alice waves"
    assert render.event(Joined("alice", 3)) == "*** alice has joined (3 users online)"
    assert render.event(Joined("alice", 1)) == "*** alice has joined (1 user online)"
    assert render.event(Renamed("alice", "al")) == "*** alice is now known as al"
    assert render.event(Left("alice", "Quit")) == "*** alice has left (Quit)"


def test_welcome_counts_users_in_words():
    """0 users, 1 user, 2 users."""
    assert render.welcome("lab", 0) == "*** Welcome to chatd on lab. 0 users online."
    assert render.welcome("lab", 1) == "*** Welcome to chatd on lab. 1 user online."
    assert render.welcome("lab", 2) == "*** Welcome to chatd on lab. 2 users online."


def test_user_list_is_sorted_ignoring_case():
    """The list is sorted case-insensitively."""
    assert render.user_list(["carol", "Bob", "alice"]) == "*** 3 users online: alice, Bob, carol"


def test_outgoing_encodes_once_per_charset_with_crlf_and_iac_doubled():
    """Lines end in CR LF; unencodable characters become ?; 0xFF is doubled."""
    outgoing = Outgoing(["<bob> ÿes 张"])
    assert outgoing.encoded("utf-8") == "<bob> ÿes 张\r\n".encode()
    assert outgoing.encoded("iso8859-1") == b"<bob> \xff\xffes ?\r\n"
    assert outgoing.encoded("gbk") == b"<bob> ?es \xd5\xc5\r\n"
    assert outgoing.encoded("gbk") is outgoing.encoded("gbk")


def test_a_batch_share_is_its_runs_in_each_charset():
    """A share is cut from the batch's bytes: ASCII as is, other text per charset with 0xFF doubled, UTF-7 exactly."""
    batch = Batch(["<a> one", "<b> ÿ张", "<a> a+b", "<c> four"])
    everything = batch.share([(0, 4)])
    assert everything.encoded("utf-8") == "<a> one\r\n<b> ÿ张\r\n<a> a+b\r\n<c> four\r\n".encode()
    assert everything.encoded("utf-8") is everything.encoded("utf-8")  # encoded once, not copied
    not_a = batch.share([(1, 2), (3, 4)])
    assert not_a.encoded("iso8859-1") == b"<b> \xff\xff?\r\n<c> four\r\n"
    assert not_a.encoded("gbk") == b"<b> ?\xd5\xc5\r\n<c> four\r\n"
    assert not_a.text == "<b> ÿ张\r\n<c> four\r\n"
    ascii_only = Batch(["<a> a+b", "<b> ~x"])
    assert not writes_ascii_as_ascii("utf-7") and not writes_ascii_as_ascii("hz")
    assert ascii_only.share([(0, 2)]).encoded("utf-7") == encode("<a> a+b\r\n<b> ~x\r\n", "utf-7")
    assert ascii_only.share([(1, 2)]).encoded("hz") == encode("<b> ~x\r\n", "hz")


@given(
    st.lists(st.text(max_size=8), min_size=1, max_size=8),
    st.sets(st.integers(0, 7)),
    st.integers(0, 8),
    st.sampled_from(["utf-8", "iso8859-1", "gbk", "utf-7", "hz", "ascii"]),
)
def test_a_share_is_exactly_the_messages_it_keeps(lines, skipped, start, charset):
    """For any messages, senders' lines skipped and a late start: the bytes are those messages' own encodings."""
    batch = Batch(lines)
    runs = _runs_between(start, sorted(index for index in skipped if index < len(lines)), len(lines))
    kept = [index for index in range(start, len(lines)) if index not in skipped]
    assert [index for begin, end in runs for index in range(begin, end)] == kept
    if runs:
        assert batch.share(runs).encoded(charset) == b"".join(encode(lines[index] + "\r\n", charset) for index in kept)
