"""The exact lines users see (chatd.render, chatd.wire)."""

from chatd import render
from chatd.render import Acted, Joined, Left, Renamed, Said
from chatd.wire import Outgoing


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
