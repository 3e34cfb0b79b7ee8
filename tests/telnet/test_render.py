"""The exact lines telnet users see (chatd.telnet.render), and their bytes (chatd.telnet.dialect, chatd.core.batch)."""

from hypothesis import given
from hypothesis import strategies as st

from chatd.core.batch import Batch, Share, from_index, without
from chatd.core.events import Acted, Crowd, Joined, Left, Parted, Renamed, Said, TopicChanged
from chatd.core.text import plain
from chatd.telnet import render
from chatd.telnet.dialect import Outgoing, TelnetDialect, encode, writes_ascii_as_ascii


def test_event_lines_in_the_current_channel():
    """Each event has its documented format; in the default channel, joins count users online."""
    def line(event):
        return render.event(event, "#lobby", "#lobby")
    assert line(Said("#lobby", "alice", "hi")) == "<alice> hi"
    assert line(Acted("#lobby", "alice", "waves")) == "* alice waves"
    assert line(Joined("#lobby", "alice", 3)) == "*** alice has joined (3 users online)"
    assert line(Joined("#lobby", "alice", 1)) == "*** alice has joined (1 user online)"
    assert line(Renamed("alice", "al")) == "*** alice is now known as al"
    assert line(Left("alice", "Quit")) == "*** alice has left (Quit)"


def test_event_lines_of_other_channels_carry_the_channel():
    """Lines of a channel that is not the member's current one start with [#channel]."""
    def line(event, current="#lab"):
        return render.event(event, current, "#lobby")
    assert line(Said("#lab", "bob", "hi")) == "<bob> hi"
    assert line(Said("#lab", "bob", "hi"), "#lobby") == "[#lab] <bob> hi"
    assert line(Acted("#lab", "bob", "waves"), None) == "[#lab] * bob waves"
    assert line(Joined("#lab", "carol", 4)) == "*** carol has joined (4 users)"
    assert line(Joined("#lab", "carol", 4), "#lobby") == "[#lab] *** carol has joined (4 users)"
    assert line(Joined("#lobby", "carol", 4)) == "[#lobby] *** carol has joined (4 users online)"
    assert line(Parted("#lab", "alice", "lunch", 2)) == "*** alice has left #lab (lunch)"
    assert line(Parted("#lab", "alice", "", 2), "#lobby") == "*** alice has left #lab"
    assert line(TopicChanged("#lab", "alice", "solder")) == "*** alice set the topic of #lab: solder"
    assert line(TopicChanged("#lab", "alice", "")) == "*** alice cleared the topic of #lab"
    assert line(Crowd("#lobby", 12, 3, 214)) == "*** 12 joined, 3 left #lobby (214 users)"


def test_channel_operators_lines():
    """Modes, kicks, mode and ban lists, invitations and notices, as telnet users read them; member lists sorted past ranks."""
    from chatd.core import replies
    from chatd.core.events import AccountChanged, Invited, Kicked, ModeChanged, Noticed, RealNameChanged

    assert render.event(ModeChanged("#lab", "alice", (("+o", "bob"), ("-k", "*")))) == (
        "*** alice sets mode +o-k bob * on #lab")
    assert render.event(Kicked("#lab", "bob", "alice", "loud", 2)) == "*** bob was kicked from #lab by alice (loud)"
    assert render.event(Invited("#lab", "bob", "alice"), "#lobby") == "[#lab] *** alice invited bob"
    assert render.event(RealNameChanged("bob", "Robert")) == "*** bob's real name is now Robert"
    assert render.event(AccountChanged("bob", "bob")) == ""  # a line of none: /whois says who is identified
    assert render.reply_lines(replies.ModesShown("#lab", "+knt", ("solder",), 0.0), "#lobby") == [
        "*** Modes of #lab: +knt solder"]
    assert render.reply_lines(replies.MaskList("#lab", "b", ()), "#lobby") == ["*** #lab has no bans"]
    assert render.reply_lines(replies.InvitedTo("alice", "#lab"), "#lobby") == [
        "*** alice invites you into #lab (/join #lab)"]
    assert render.event(Noticed("#lab", "bot", "build passed"), "#lobby") == "[#lab] -bot- build passed"
    assert render.reply_lines(replies.PrivateReceived("bot", "done", notice=True), "#lobby") == ["-bot- done"]
    assert render.reply_lines(replies.ChannelMembers("#lab", ("carol", "@bob", "+alice")), "#lobby") == [
        "*** 3 users in #lab: +alice, @bob, carol"]


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


def said(texts):
    return [Said("#lobby", "x", text) for text in texts]


def test_a_batch_share_is_its_runs_in_each_charset():
    """A share is cut from the batch's bytes: ASCII as is, other text per charset with 0xFF doubled, UTF-7 exactly."""
    batch = Batch(said(["one", "ÿ张", "a+b", "four"]))
    utf8, latin1, gbk = TelnetDialect("utf-8"), TelnetDialect("iso8859-1"), TelnetDialect("gbk")
    everything = Share(batch, [(0, 4)], "#lobby")
    assert everything.encoded(utf8) == "<x> one\r\n<x> ÿ张\r\n<x> a+b\r\n<x> four\r\n".encode()
    assert everything.encoded(utf8) is batch.encoded(utf8, "#lobby")[0]  # the batch's own bytes, not a copy
    not_a = Share(batch, [(1, 2), (3, 4)], "#lobby")
    assert not_a.encoded(latin1) == b"<x> \xff\xff?\r\n<x> four\r\n"
    assert not_a.encoded(gbk) == b"<x> ?\xd5\xc5\r\n<x> four\r\n"
    elsewhere = Share(batch, [(0, 1)], "#lab")
    assert elsewhere.encoded(utf8) == b"[#lobby] <x> one\r\n"
    ascii_only = Batch(said(["a+b", "~x"]))
    assert not writes_ascii_as_ascii("utf-7") and not writes_ascii_as_ascii("hz")
    assert Share(ascii_only, [(0, 2)], "#lobby").encoded(TelnetDialect("utf-7")) == encode("<x> a+b\r\n<x> ~x\r\n", "utf-7")
    assert Share(ascii_only, [(1, 2)], "#lobby").encoded(TelnetDialect("hz")) == encode("<x> ~x\r\n", "hz")


@given(
    st.lists(st.text(max_size=8), min_size=1, max_size=8),
    st.sets(st.integers(0, 7)),
    st.integers(0, 8),
    st.sampled_from(["utf-8", "iso8859-1", "gbk", "utf-7", "hz", "ascii"]),
)
def test_a_share_is_exactly_the_messages_it_keeps(texts, skipped, start, charset):
    """For any messages, senders' lines skipped and a late start: the bytes are those messages' own encodings (IRC's formatting left out)."""
    batch = Batch(said(texts))
    runs = without(from_index([(0, len(texts))], start), sorted(index for index in skipped if index < len(texts)))
    kept = [index for index in range(start, len(texts)) if index not in skipped]
    assert [index for begin, end in runs for index in range(begin, end)] == kept
    if runs:
        assert Share(batch, runs, "#lobby").encoded(TelnetDialect(charset)) == b"".join(
            encode(f"{plain(f'<x> {texts[index]}')}\r\n", charset) for index in kept)


@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(1, 5)), max_size=4),
    st.sets(st.integers(0, 40)),
    st.integers(0, 40),
)
def test_cutting_runs_keeps_exactly_the_events_left(runs, skipped, first):
    """without() and from_index() on any ascending runs leave exactly the indices they should."""
    ordered, position = [], 0
    for gap, length in runs:  # ascending, disjoint runs
        ordered.append((position + gap, position + gap + length))
        position += gap + length
    kept = [index for start, end in ordered for index in range(start, end) if index >= first and index not in skipped]
    cut = without(from_index(ordered, first), sorted(skipped))
    assert [index for start, end in cut for index in range(start, end)] == kept
    assert all(start < end for start, end in cut)


def test_an_event_telnet_shows_nothing_of_takes_no_line():
    """An event with no telnet line (someone identified) takes no bytes, not an empty line, beside one that has one."""
    from chatd.core.events import AccountChanged, Said

    data, offsets = TelnetDialect("utf-8", "#lobby").encode_events(
        [AccountChanged("bob", "bob"), Said("#lobby", "bob", "hi")], "#lobby")
    assert data == b"<bob> hi\r\n" and offsets == [0, 0, len(data)]
