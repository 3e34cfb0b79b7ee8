"""
chatd.web.frames: the whole text messages a browser sends, read as wsproto
reads them, and everything else left to wsproto; then the web session's
reads through it, on twisted.web's real Site and HTTP channel in memory.
"""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from wsproto import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from chatd.web.frames import split
from tests.fakes import Browser, make_site

LIMIT = 1000

# A browser's frames, each as a wsproto client (masked, as every browser's are) makes it.
frame_items = st.one_of(
    st.text(max_size=400).map(lambda text: ("text", text)),
    st.binary(max_size=125).map(lambda payload: ("ping", payload)),
    st.binary(max_size=125).map(lambda payload: ("pong", payload)),
)


def client_frames(items):
    """Each item's frame from a browser, and what `split` makes of it."""
    client = Connection(ConnectionType.CLIENT)
    frames, expected = [], []
    for kind, value in items:
        event = TextMessage(value) if kind == "text" else Ping(value) if kind == "ping" else Pong(value)
        frame = client.send(event)
        frames.append(frame)
        expected.append(value if kind == "text" else frame)
    return frames, expected


@settings(max_examples=200)
@given(st.lists(frame_items, max_size=20))
def test_a_browsers_text_messages_pings_and_pongs_are_all_read(items):
    """Whole frames of those kinds, of any length a message may have, are read in order, to the last byte."""
    frames, expected = client_frames(items)
    data = b"".join(frames)
    found = split(data, LIMIT)
    assert (found.messages, found.end, found.other) == (expected, len(data), False)


@settings(max_examples=200)
@given(st.lists(frame_items, min_size=1, max_size=10), st.data())
def test_a_read_that_ends_inside_a_frame_is_read_up_to_that_frame(items, data):
    """What a read cut anywhere holds: the frames before the cut, then the start of one to be read again."""
    frames, expected = client_frames(items)
    whole = b"".join(frames)
    cut = data.draw(st.integers(0, len(whole)))
    found = split(whole[:cut], LIMIT)
    ends = [sum(map(len, frames[:count])) for count in range(len(frames) + 1)]
    complete = max(count for count, end in enumerate(ends) if end <= cut)
    assert (found.messages, found.end, found.other) == (expected[:complete], ends[complete], False)


def masked_text_frame(payload: bytes, first: int = 0x81, length_bytes: bytes | None = None) -> bytes:
    mask = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    length = bytes([0x80 | len(payload)]) if length_bytes is None else length_bytes
    return bytes([first]) + length + mask + masked


client = Connection(ConnectionType.CLIENT)


@pytest.mark.parametrize("other, why", [
    (client.send(BytesMessage(b"data")), "binary"),
    (client.send(TextMessage("in pieces", message_finished=False)), "the first of a message's frames"),
    (Connection(ConnectionType.CLIENT).send(CloseConnection(1000)), "a close"),
    (b"\x81\x05hello", "not masked"),
    (masked_text_frame(b"\xff\xfe"), "not UTF-8"),
    (masked_text_frame(b"x" * 5, length_bytes=b"\xfe\x00\x05"), "a length not in its shortest form"),
    (masked_text_frame(b"x" * 200, length_bytes=b"\xfe\x00\xc8"), "longer than a message may be (LIMIT 100 here)"),
    (b"\x81\xff" + bytes(8), "a 64-bit length"),
    (b"\xc1\x85" + bytes(9), "a reserved bit set (an extension's)"),
])
def test_any_other_frame_and_all_after_it_are_left_for_wsproto(other, why):
    """After the messages before it, `split` stops at a frame of any other kind: the rest is wsproto's."""
    frames, expected = client_frames([("text", "before"), ("ping", b"p")])
    after, _ = client_frames([("text", "after")])
    data = b"".join(frames) + other + after[0]
    found = split(data, 100)
    assert (found.messages, found.end, found.other) == (expected, len(b"".join(frames)), True), why


# -- the web session's reads


@pytest.fixture
def clock():
    return Clock()


def logged_in(site, clock, nick):
    browser = Browser(site, clock)
    browser.messages()
    browser.send({"type": "login", "nick": nick})
    assert [message["type"] for message in browser.messages()] == ["logged-in"]
    return browser


def said(browser):
    return [event[4] for message in browser.messages() if message["type"] == "events"
            for event in message["events"] if event[0] == "said"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=30))
def test_messages_split_across_reads_anyhow_all_reach_the_chat_in_order_and_pings_are_answered(cuts):
    """
    However the reads cut a browser's frames (held parts included), every
    message reaches the others once and in order, and the ping between
    them is answered: the session's reads, through twisted.web's channel.
    """
    clock = Clock()
    site, _ = make_site(clock, rate_lines_per_second=1e6, rate_burst_lines=1e6)
    alice, bob = logged_in(site, clock, "alice"), logged_in(site, clock, "bob")
    texts = [f"line {number} " + "é" * number for number in range(12)]
    frames = [alice.ws.send(TextMessage(json.dumps({"type": "say", "text": text}))) for text in texts]
    frames.insert(6, alice.ws.send(Ping(b"are you there")))
    data, position = b"".join(frames), 0
    for cut in cuts * (len(data) // sum(cuts) + 1):
        alice.send_raw(data[position:position + cut])
        position += cut
        if position >= len(data):
            break
    assert said(bob) == texts
    assert [event.payload for event in alice.read() if isinstance(event, Pong)] == [b"are you there"]


def test_a_message_sent_in_pieces_is_read_by_wsproto_and_the_chat_goes_on(clock):
    """A message sent in pieces (which browsers do not do) is read by wsproto, and so is all that follows."""
    site, _ = make_site(clock)
    alice, bob = logged_in(site, clock, "alice"), logged_in(site, clock, "bob")
    say = json.dumps({"type": "say", "text": "in two pieces"})
    alice.send_raw(alice.ws.send(TextMessage("", message_finished=False)))
    alice.send_raw(alice.ws.send(TextMessage(say, message_finished=True)))
    alice.send({"type": "say", "text": "whole again"})
    assert said(bob) == ["in two pieces", "whole again"]


def test_once_wsproto_reads_a_connection_a_whole_text_frame_is_not_read_past_it(clock):
    """
    A whole text frame while a message is still in pieces breaks the
    protocol: wsproto, which reads the connection from the first piece on,
    closes it (1002), and the frame's text reaches no one.
    """
    site, _ = make_site(clock)
    alice, bob = logged_in(site, clock, "alice"), logged_in(site, clock, "bob")
    alice.send_raw(alice.ws.send(TextMessage("", message_finished=False)))
    alice.send_raw(masked_text_frame(json.dumps({"type": "say", "text": "cutting in"}).encode()))
    alice.read()
    assert alice.close_code() == 1002
    assert "cutting in" not in said(bob)


@pytest.mark.parametrize("frame, code", [
    (masked_text_frame(b"\xff\xfe"), 1007),  # not UTF-8: wsproto's answer, as before
    (b"\x81\x05hello", 1002),  # not masked
])
def test_a_frame_wsproto_refuses_is_refused_as_before(clock, frame, code):
    """What chatd.web.frames does not read reaches wsproto, whose close code the browser gets."""
    site, _ = make_site(clock)
    alice = logged_in(site, clock, "alice")
    alice.send_raw(frame)
    alice.read()
    assert alice.close_code() == code
