"""
The web front door in memory: the JSON dialect's frames, the browser's
messages, and WebSocket sessions on twisted.web's real Site and HTTP
channel over in-memory transports, with a wsproto client on the browser's
side and a Clock for time.
"""

import gc
import json
import weakref

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from wsproto import Connection, ConnectionType
from wsproto.events import BytesMessage, Ping, RejectConnection, TextMessage
from zope.interface.verify import verifyObject

from chatd.core import commands as c
from chatd.core import replies
from chatd.core.batch import Batch, Share
from chatd.core.events import Joined, Said
from chatd.core.moderation import Moderation
from chatd.core.session import ISession
from chatd.net.limits import ConnectionLimits
from chatd.web import render
from chatd.web.dialect import JSON, frame_header
from chatd.web.parse import Invalid, TooLong, Unreadable, parse_message
from chatd.web.protocol import PING_INTERVAL_SECONDS, WebSession, max_message_size
from chatd.web.site import MAX_REQUEST_BODY_BYTES
from tests.fakes import Browser, make_site

# -- the dialect


def decode_frames(data: bytes) -> list:
    """What a browser reads from these bytes (after the handshake): the messages, as JSON."""
    browser = Connection(ConnectionType.CLIENT)
    browser.receive_data(data)
    return [json.loads(event.data) for event in browser.events() if isinstance(event, TextMessage)]


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
def test_frame_headers_carry_every_length_as_rfc_6455_says(length):
    """A text frame's header carries each length in RFC 6455's 7, 16 or 64 bits."""
    payload = json.dumps({"type": "x", "pad": "a" * max(0, length - 21)}).encode()[:length]
    header = frame_header(len(payload))
    assert header[0] == 0x81  # FIN, text
    assert len(header) == (2 if len(payload) < 126 else 4 if len(payload) < 65536 else 10)


def test_a_share_is_one_frame_of_its_events_and_members_with_it_share_the_bytes():
    """A share is one frame of its events, and every member with that share gets the same bytes."""
    events = [Said("#lobby", "alice", "hi", at=0), Joined("#lab", "bob", 2, at=0), Said("#lab", "bob", "привет", at=0)]
    batch = Batch(events)
    every = Share(batch, [(0, 3)], None)
    assert every.parts(JSON) is every.parts(JSON)
    [message] = decode_frames(every.encoded(JSON))
    assert message["type"] == "events"
    assert message["events"] == [["said", 0, "#lobby", "alice", "hi"], ["joined", 0, "#lab", "bob", 2, "", ""],
                                 ["said", 0, "#lab", "bob", "привет"]]
    some = Share(batch, [(0, 1), (2, 3)], "#lab")
    [message] = decode_frames(some.encoded(JSON))
    assert [event[4] for event in message["events"]] == ["hi", "привет"]


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_any_text_makes_a_valid_frame(texts):
    """Any text, as events, makes a frame a browser reads back whole."""
    events = [Said("#lobby", "alice", text, at=0) for text in texts]
    [message] = decode_frames(Share(Batch(events), [(0, len(events))], None).encoded(JSON))
    assert len(message["events"]) == len(texts)


# -- what the browser sends


def test_every_message_type_is_a_command():
    """Every message type of the protocol parses into its command."""
    parse = lambda message: parse_message(json.dumps(message), 100)  # noqa: E731
    assert parse({"type": "login", "nick": " alice "}) == c.LogIn("alice")
    assert parse({"type": "say", "text": "hi", "channel": "#lab"}) == c.Say("hi", "#lab")
    assert parse({"type": "say", "text": "   "}) is None
    assert parse({"type": "act", "text": "waves"}) == c.Act("waves", None)
    assert parse({"type": "msg", "to": "bob", "text": "psst"}) == c.Msg("bob", "psst")
    assert parse({"type": "join", "channel": "lab"}) == c.Join("lab")
    assert parse({"type": "part"}) == c.Part(None, "")
    assert parse({"type": "topic", "channel": "#lab", "topic": ""}) == c.Topic("#lab", "")
    assert parse({"type": "names"}) == c.Names(None)
    assert parse({"type": "channels"}) == c.Channels()
    assert parse({"type": "nick", "nick": "al"}) == c.Nick("al")
    assert parse({"type": "quit"}) == c.Quit("Quit")
    assert parse({"type": "oper", "password": "s3cret"}) == c.Oper("s3cret")
    assert parse({"type": "kick", "nick": "bob", "reason": "spam"}) == c.Kick("bob", "spam")
    assert parse({"type": "ban", "target": "bob"}) == c.Ban("bob", 60)
    assert parse({"type": "ban", "target": "bob", "minutes": 0}) == c.Ban("bob", 0)
    assert parse({"type": "unban", "address": "192.0.2.7"}) == c.Unban("192.0.2.7")
    assert parse({"type": "bans"}) == c.Bans()
    assert parse({"type": "join", "channel": "#lab", "key": "solder"}) == c.Join("#lab", "solder")
    assert parse({"type": "mode", "channel": "#lab", "words": ["+ov", "bob", "carol"]}) == c.Mode(
        "#lab", ("+ov", "bob", "carol"))
    assert parse({"type": "mode"}) == c.Mode(None, ())
    assert parse({"type": "kick", "channel": "#lab", "nick": "bob"}) == c.KickFrom("#lab", "bob", "")
    assert parse({"type": "invite", "nick": "bob", "channel": "#lab"}) == c.Invite("bob", "#lab")
    assert parse({"type": "mode", "words": "+o bob"}) == Invalid('mode: "words" is not a list of at most 21 words')


def test_bad_messages_are_told_apart():
    """What cannot be read (closes) is told apart from what is merely invalid (an error)."""
    assert parse_message("{nope", 100) == Unreadable("not JSON")
    assert parse_message("[1]", 100) == Unreadable("not a JSON object")
    assert parse_message('{"type": "dance"}', 100) == Unreadable("unknown message type: 'dance'")
    assert parse_message('{"type": "say"}', 100) == Invalid('say: "text" is missing')
    assert parse_message('{"type": "say", "text": 5}', 100) == Invalid('say: "text" is not a string')
    assert parse_message('{"type": "ban", "target": "x", "minutes": "ten"}', 100) == Invalid(
        'ban: "minutes" is not a number of minutes')
    assert parse_message(json.dumps({"type": "say", "text": "é" * 51}), 100) == TooLong()


def test_text_is_cleaned_and_a_lone_surrogate_is_no_text():
    """A message's text is cleaned of escape sequences, and a lone surrogate becomes ?."""
    assert parse_message('{"type": "say", "text": "a\\u001b[31mb\\ud800c"}', 100) == c.Say("ab?c")


def test_replies_render_as_the_protocol_says():
    """Replies render as the JSON messages the protocol documents."""
    assert json.loads(render.reply(replies.ChannelJoined("#lab", 3, "solder", ()))) == {
        "type": "channel-joined", "channel": "#lab", "count": 3, "topic": "solder", "history": [], "oldest": None}
    assert json.loads(render.reply(replies.Error("nope", "no-such-nick"))) == {
        "type": "error", "reason": "nope", "code": "no-such-nick"}
    assert json.loads(render.reply(replies.PrivateReceived("bob", "<b>"))) == {
        "type": "private", "sender": "bob", "text": "<b>", "notice": False}


# -- sessions, in memory


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def site(clock):
    return make_site(clock)[0]


def logged_in(site, clock, nick, host="127.0.0.1"):
    browser = Browser(site, clock, host=host)
    assert [message["type"] for message in browser.messages()] == ["welcome"]
    browser.send({"type": "login", "nick": nick})
    assert [message["type"] for message in browser.messages()] == ["logged-in"]
    return browser


def test_a_session_is_a_session(site, clock):
    """The door's connection is a real ISession."""
    browser = Browser(site, clock)
    assert browser.accepted
    session = next(iter(site.resource.children[b"chat"].factory.connections)).session
    assert verifyObject(ISession, session)


def test_once_the_websocket_is_open_the_http_channel_and_its_request_are_freed(clock):
    """
    Once the WebSocket is open, the session is the connection's protocol:
    the upgrade's HTTP channel and its request (headers and all) are freed
    at once, and the chat goes on.
    """
    site, sessions = make_site(clock)
    gc.disable()  # freed at once, not by the collector
    try:
        upgraded = []
        site.resource.children[b"chat"].factory.buildProtocol = lambda request: (
            upgraded.append((weakref.ref(request.channel), weakref.ref(request))) or WebSession(sessions, request))
        browser = logged_in(site, clock, "alice")
        browser.protocol = None
        [(channel, request)] = upgraded
        assert (channel(), request()) == (None, None)
    finally:
        gc.enable()
    assert isinstance(browser.transport.protocol, WebSession)
    browser.send({"type": "names"})
    assert browser.messages() == [{"type": "users", "nicks": ["alice"]}]


def test_welcome_login_and_one_frame_per_turn(site, clock):
    """A browser is welcomed, logs in, and gets one frame for a turn's events from several users."""
    alice = Browser(site, clock)
    assert alice.messages() == [{"type": "welcome", "server": "lab", "users": 0, "accounts": False}]
    alice.send({"type": "login", "nick": "alice"})
    [hello] = alice.messages()
    assert (hello["type"], hello["nick"], hello["channel"], hello["history"]) == ("logged-in", "alice", "#lobby", [])
    bob = logged_in(site, clock, "bob")
    carol = logged_in(site, clock, "carol")
    alice.messages()
    bob.messages()
    bob.send({"type": "say", "text": "one"})
    carol.send({"type": "say", "text": "two"})  # the same turn: one frame
    [frame] = alice.messages()
    assert [event[3:] for event in frame["events"]] == [["bob", "one"], ["carol", "two"]]
    assert [[event[4] for event in frame["events"]] for frame in bob.messages()] == [["two"]]


def test_a_message_over_the_line_limit_is_refused_and_the_session_goes_on(site, clock):
    """A message over --max-line is refused with an error, and the session goes on."""
    alice = logged_in(site, clock, "alice")
    alice.send({"type": "say", "text": "x" * 101})
    assert alice.messages() == [{"type": "error", "reason": "line too long (max 100 bytes)", "code": "line-too-long"}]
    alice.send({"type": "names"})
    assert alice.messages() == [{"type": "users", "nicks": ["alice"]}]


@pytest.mark.parametrize("sent, reason, code", [
    (lambda ws: ws.send(TextMessage("{nope")), "not JSON", 1003),
    (lambda ws: ws.send(TextMessage('{"type": "dance"}')), "unknown message type: 'dance'", 1003),
    (lambda ws: ws.send(BytesMessage(b"\x00\x01")), "binary messages are not part of the chat protocol", 1003),
    (lambda ws: ws.send(TextMessage("x" * (max_message_size(100) + 1), message_finished=False)),
     f"message too long (max {max_message_size(100)} bytes)", 1009),
    (lambda ws: ws.send(TextMessage(json.dumps({"type": "say", "text": "x" * max_message_size(100)}))),
     f"message too long (max {max_message_size(100)} bytes)", 1009),
])
def test_what_cannot_be_read_is_answered_then_closed_and_the_others_go_on(site, clock, sent, reason, code):
    """What cannot be read is answered with 'closing' and the right close code, and the others go on."""
    alice = logged_in(site, clock, "alice")
    mallory = logged_in(site, clock, "mallory")
    alice.messages()
    mallory.send_raw(sent(mallory.ws))
    assert mallory.messages() == [{"type": "closing", "reason": reason, "code": "bad-message"}]
    assert mallory.close_code() == code
    assert mallory.transport.disconnecting
    [frame] = alice.messages()
    assert [event[:1] + event[2:] for event in frame["events"]] == [["left", "mallory", "Quit"]]


def test_a_silent_browser_is_pinged_and_one_that_never_answers_is_dropped(site, clock):
    """A silent browser is pinged; one that never answers is dropped with 'Ping timeout'."""
    alice = logged_in(site, clock, "alice")
    bob = logged_in(site, clock, "bob")
    alice.messages()
    clock.advance(PING_INTERVAL_SECONDS)  # both spoke (they logged in): no ping
    assert [event for event in bob.read() + alice.read() if isinstance(event, Ping)] == []
    clock.advance(PING_INTERVAL_SECONDS)
    assert [event.payload for event in bob.read() if isinstance(event, Ping)] == [b"chatd"]
    alice.read()
    bob.send_raw(bob.ws.send(Ping(b"chatd").response()))  # bob answers; alice does not
    clock.advance(PING_INTERVAL_SECONDS)
    assert [event[:1] + event[2:] for frame in bob.messages() for event in frame["events"]] == [
        ["left", "alice", "Ping timeout"]]
    assert bob.close_code() is None
    assert alice.messages() == [{"type": "closing", "reason": "no answer to pings", "code": "ping-timeout"}]
    assert alice.close_code() == 1000
    alice.lost()


def test_login_and_idle_timeouts(clock):
    """No nickname in time, or no input for --idle-timeout: a 'closing' message and the close."""
    site, _ = make_site(clock, login_timeout_seconds=10, idle_timeout_seconds=20)
    lazy = Browser(site, clock)
    alice = logged_in(site, clock, "alice")
    clock.advance(10)
    assert lazy.messages()[-1] == {"type": "closing", "reason": "no nickname chosen within 10 s", "code": "login-timeout"}
    alice.send({"type": "say", "text": "still here"})
    clock.advance(15)
    assert alice.messages() == []
    clock.advance(5)
    assert alice.messages() == [{"type": "closing", "reason": "no input for 20 s", "code": "idle-timeout"}]


def test_a_flood_waits_its_turn_and_is_counted(clock):
    """Messages past the burst wait in the flood queue, are let through at the rate, and are counted."""
    site, sessions = make_site(clock, rate_lines_per_second=1, rate_burst_lines=3)  # the login is one
    alice = logged_in(site, clock, "alice")
    bob = logged_in(site, clock, "bob")
    alice.messages()
    for number in range(4):
        bob.send({"type": "say", "text": str(number)})
    said = lambda: [event[4] for frame in alice.messages() for event in frame["events"]]  # noqa: E731
    assert said() == ["0", "1"]
    assert sessions.counts.flood_delayed_lines == 2
    clock.advance(1)
    assert said() == ["2"]
    clock.advance(1)
    assert said() == ["3"]


def test_a_reader_too_far_behind_is_dropped(clock):
    """A browser that falls --sendq bytes behind is dropped and counted; the sender is not slowed."""
    site, sessions = make_site(clock, send_queue_bytes=1024)
    alice = logged_in(site, clock, "alice")
    bob = logged_in(site, clock, "bob")
    alice.transport.producer.pauseProducing()  # alice's socket buffer is full
    for number in range(30):
        bob.send({"type": "say", "text": f"message {number:02} " + "x" * 40})
        clock.advance(0)
    assert alice.transport.disconnected
    assert sessions.counts.send_queue_drops == 1


def test_pages_of_other_sites_are_refused_unless_allowed(clock):
    """Another site's page is refused with 403 unless --web-origin allows it; a client with no Origin is no page."""
    site, _ = make_site(clock)
    assert not Browser(site, clock, origin="http://evil.example").accepted
    refused = Browser(site, clock, origin="http://evil.example")
    assert [event.status_code for event in refused.events if isinstance(event, RejectConnection)] == [403]
    assert Browser(site, clock, origin=None).accepted  # not a browser: no page to hijack
    allowed, _ = make_site(clock, origins=["http://lab.example:8080"])
    assert Browser(allowed, clock, origin="http://lab.example:8080").accepted
    assert not Browser(allowed, clock, origin="http://evil.example").accepted


def test_web_connections_count_against_the_connection_limits(clock):
    """Web connections count against --max-per-ip, and a refused one gets 503."""
    limits = ConnectionLimits(100, 1)
    site, _ = make_site(clock, limits=limits)
    first = Browser(site, clock)
    assert first.accepted and limits.total == 1
    second = Browser(site, clock)
    assert [event.status_code for event in second.events if isinstance(event, RejectConnection)] == [503]
    first.lost()
    assert limits.total == 0


def test_a_banned_address_is_refused(clock):
    """A banned address gets 403 for any request."""
    moderation = Moderation("s3cret", clock)
    moderation.ban("192.0.2.7", 0)
    site, _ = make_site(clock, moderation=moderation)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 50000))
    protocol = site.buildProtocol(transport.getPeer())
    protocol.makeConnection(transport)
    assert transport.value().startswith(b"HTTP/1.1 403 Forbidden")
    assert transport.value().endswith(b"chatd: you are banned from this server\n")


def test_a_request_body_is_bounded(site):
    """A request body past MAX_REQUEST_BODY_BYTES closes the connection."""
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
    protocol = site.buildProtocol(transport.getPeer())
    protocol.makeConnection(transport)
    protocol.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_REQUEST_BODY_BYTES * 2))
    protocol.dataReceived(b"x" * (MAX_REQUEST_BODY_BYTES + 1))
    assert transport.disconnected


def test_shutdown_tells_every_browser(clock):
    """At shutdown every browser reads 'closing' and gets a normal close."""
    site, sessions = make_site(clock)
    alice = logged_in(site, clock, "alice")
    done = sessions.shut_down(5)
    assert alice.messages() == [{"type": "closing", "reason": "server shutting down", "code": "shutting-down"}]
    assert alice.close_code() == 1000
    alice.lost()
    assert done.called


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                           max_leaves=8)
TYPES = ["login", "say", "act", "msg", "join", "part", "topic", "names", "channels", "nick", "quit", "oper", "kick",
         "ban", "unban", "bans", "dance"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=50),
    st.builds(lambda kind, fields: json.dumps({**fields, "type": kind}), st.sampled_from(TYPES),
              st.dictionaries(st.sampled_from(["nick", "text", "channel", "to", "topic", "reason", "password", "target",
                                               "minutes", "address"]), JSON_VALUES, max_size=4)),
), max_size=8))
def test_whatever_a_browser_sends_gets_an_answer_in_the_protocol_and_the_others_go_on(messages):
    """Whatever a browser sends, it gets an answer in the protocol, and another user's session goes on."""
    clock = Clock()
    site, _ = make_site(clock, rate_burst_lines=100)
    alice = logged_in(site, clock, "alice")
    mallory = logged_in(site, clock, "mallory")
    for message in messages:
        if mallory.close_code() is not None:
            break
        mallory.send_raw(mallory.ws.send(TextMessage(message)))
        for answer in mallory.messages():
            assert answer["type"] in {"events", "error", "closing", "logged-in", "channel-joined", "now-talking-in",
                                      "channel-parted", "members", "users", "channels", "topic", "private-sent",
                                      "bye", "operator", "ban-added", "ban-lifted", "bans"}, answer
    alice.send({"type": "names"})
    assert [message["type"] for message in alice.messages() if message["type"] != "events"] == ["users"]
