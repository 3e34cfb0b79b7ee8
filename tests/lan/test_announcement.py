"""The UDP announcement format (chatd.lan.announcement)."""

import json

import pytest
from attrs import evolve

from chatd.lan.announcement import (
    MAX_ANNOUNCEMENT_BYTES,
    QUERY_BYTES,
    Announcement,
    NotAnAnnouncement,
    decode,
    encode_query,
    is_query,
)

LAB = Announcement(id="9f1c2a4be07d3361", name="lab", host="192.0.2.5", port=8089, users=3,
                   uptime=125, seq=26, ts=1795000000, state="up", interval=5, channels=2, web=8080)


def test_announcement_is_one_json_object_with_every_field():
    """The documented fields, in one compact UTF-8 JSON object."""
    assert json.loads(LAB.encode()) == {
        "service": "chatd", "v": 1, "id": "9f1c2a4be07d3361", "name": "lab", "host": "192.0.2.5",
        "port": 8089, "users": 3, "channels": 2, "uptime": 125, "seq": 26, "ts": 1795000000, "state": "up",
        "interval": 5, "web": 8080,
    }


def test_a_server_without_its_web_page_announces_no_web_port():
    """With --no-web the announcement has no web port, and the listener reads none."""
    fields = json.loads(evolve(LAB, web=None).encode())
    assert "web" not in fields
    assert decode(json.dumps(fields).encode()).web is None


def test_a_node_of_a_cluster_names_its_cluster_and_a_lone_server_does_not():
    """A node of a cluster names its cluster in its announcement; a lone server names none."""
    node = evolve(LAB, cluster="school")
    assert json.loads(node.encode())["cluster"] == "school"
    assert decode(node.encode()) == node
    assert "cluster" not in json.loads(LAB.encode()) and decode(LAB.encode()).cluster is None


def test_an_announcement_without_channels_is_from_a_server_with_one():
    """A chatd from before channels sends no "channels": a listener reads 1."""
    fields = json.loads(LAB.encode())
    del fields["channels"]
    assert decode(json.dumps(fields).encode()).channels == 1


def test_decode_reverses_encode():
    """What an announcer sends, a listener reads back as the same value."""
    assert decode(LAB.encode()) == LAB


FINGERPRINT = ":".join(["AB"] * 32)


def test_a_server_with_tls_announces_its_tls_ports_and_fingerprint():
    """The IRC port, the TLS ports and the certificate's fingerprint go out and come back as they were."""
    with_tls = evolve(LAB, irc=6667, https=8443, ircs=6697, fingerprint=FINGERPRINT)
    fields = json.loads(with_tls.encode())
    assert (fields["irc"], fields["https"], fields["ircs"], fields["fingerprint"]) == (6667, 8443, 6697, FINGERPRINT)
    assert decode(with_tls.encode()) == with_tls


def test_a_fingerprint_that_is_not_one_is_not_an_announcement():
    """A fingerprint with markup or control bytes, or of the wrong length, never reaches a listener's screen."""
    for bad in ("<b>AB</b>", FINGERPRINT + "\x1b[31m", FINGERPRINT[:-3], FINGERPRINT.lower()):
        fields = json.loads(evolve(LAB, fingerprint=FINGERPRINT).encode())
        fields["fingerprint"] = bad
        with pytest.raises(NotAnAnnouncement):
            decode(json.dumps(fields).encode())


def test_announcements_stay_under_512_bytes_whatever_the_name():
    """A name of many 4-byte characters is shortened to fit, beside every port and the fingerprint."""
    big = Announcement(id="x" * 16, name="𝔘" * 200, host="2001:db8::1234:5678", port=65535, users=10**6,
                       uptime=10**9, seq=10**12, ts=4 * 10**9, web=65535, cluster="c" * 64, irc=65535,
                       https=65535, ircs=65535, fingerprint=FINGERPRINT)
    data = big.encode()
    assert len(data) <= MAX_ANNOUNCEMENT_BYTES
    assert decode(data).name.startswith("𝔘")


def test_query_is_padded_and_recognised():
    """The query is exactly QUERY_BYTES long, so it is never shorter than an answer."""
    query = encode_query()
    assert len(query) == QUERY_BYTES
    assert json.loads(query) == {"service": "chatd", "v": 1, "query": True}
    assert is_query(query)
    assert not is_query(LAB.encode())
    assert not is_query(b"\xff\xfe")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'{"service": "other", "v": 1}',
        b'{"service": "chatd", "v": 2, "id": "x"}',
        json.dumps({**json.loads(LAB.encode()), "port": "8089"}).encode(),
        json.dumps({**json.loads(LAB.encode()), "port": True}).encode(),
        json.dumps({**json.loads(LAB.encode()), "port": 0}).encode(),
        json.dumps({**json.loads(LAB.encode()), "web": 70000}).encode(),
        json.dumps({**json.loads(LAB.encode()), "web": "8080"}).encode(),
        json.dumps({**json.loads(LAB.encode()), "state": "dancing"}).encode(),
        json.dumps({k: v for k, v in json.loads(LAB.encode()).items() if k != "host"}).encode(),
        b" " * 5000,
    ],
)
def test_anything_else_is_not_an_announcement(data):
    """Junk, other services, other versions, wrong types and missing fields are refused."""
    with pytest.raises(NotAnAnnouncement):
        decode(data)
