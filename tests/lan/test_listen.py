"""chatd-listen's bookkeeping, with a fake clock (chatd.lan.listen)."""

import json

from twisted.internet.task import Clock

from chatd.lan.announcement import Announcement
from chatd.lan.listen import Listener


def announcement(**changes):
    fields = dict(id="abc", name="lab\x1b[31m", host="127.0.0.1", port=8089, users=1, uptime=0, seq=1, ts=0, interval=5)
    fields.update(changes)
    return Announcement(**fields).encode()


def test_a_server_is_dropped_after_three_missed_intervals():
    """Silent for more than 3 x interval: one 'gone' line; heard again: listed again."""
    clock, said = Clock(), []
    listener = Listener(clock, said.append)
    listener.datagramReceived(announcement(), ("127.0.0.1", 41236))
    clock.advance(15)
    listener.forget_silent()
    assert list(listener.servers) == ["abc"]
    clock.advance(1)
    listener.forget_silent()
    assert said == ['chatd "lab" at 127.0.0.1:8089, 1 user', 'chatd "lab" at 127.0.0.1:8089 is gone (silent for 16 s)']
    assert listener.servers == {}


def test_stopping_drops_at_once_and_junk_is_counted():
    """A stopping announcement removes the server; junk is counted, queries are not."""
    clock, said = Clock(), []
    listener = Listener(clock, said.append)
    listener.datagramReceived(announcement(users=2), ("127.0.0.1", 41236))
    listener.datagramReceived(announcement(state="stopping", seq=2), ("127.0.0.1", 41236))
    listener.datagramReceived(b"junk", ("127.0.0.1", 41236))
    assert said == ['chatd "lab" at 127.0.0.1:8089, 2 users', 'chatd "lab" at 127.0.0.1:8089 is gone (stopping)']
    assert listener.ignored == 1


def test_a_server_with_tls_is_one_line_with_every_door_and_its_fingerprint():
    """The readable line names the web page over http and https, the IRC ports and the TLS fingerprint."""
    clock, said = Clock(), []
    listener = Listener(clock, said.append)
    fingerprint = ":".join(["3A"] * 32)
    listener.datagramReceived(announcement(name="lab", web=8080, irc=6667, https=8443, ircs=6697,
                                           fingerprint=fingerprint), ("127.0.0.1", 41236))
    assert said == [f'chatd "lab" at 127.0.0.1:8089, 1 user, web page http://127.0.0.1:8080/ and '
                    f'https://127.0.0.1:8443/, IRC 6667 and 6697 (TLS), TLS certificate SHA-256 {fingerprint}']


def test_json_prints_the_whole_announcement():
    """--json: each announcement's whole object, service and v included."""
    clock, said = Clock(), []
    listener = Listener(clock, said.append, as_json=True)
    listener.datagramReceived(announcement(name="lab"), ("127.0.0.1", 41236))
    assert [json.loads(line) for line in said] == [{
        "service": "chatd", "v": 1, "id": "abc", "name": "lab", "host": "127.0.0.1", "port": 8089, "users": 1, "channels": 1,
        "uptime": 0, "seq": 1, "ts": 0, "state": "up", "interval": 5,
    }]


def test_a_fractional_timestamp_is_accepted():
    """Another implementation may send unix time with a fraction: still a chatd v1 announcement."""
    clock, said = Clock(), []
    listener = Listener(clock, said.append, as_json=True)
    data = json.dumps({**json.loads(announcement()), "ts": 1795000000.25}).encode()
    listener.datagramReceived(data, ("127.0.0.1", 41236))
    assert listener.ignored == 0
    assert json.loads(said[0])["ts"] == 1795000000.25


def test_the_nodes_of_a_cluster_are_grouped_by_its_name():
    """Each node of a cluster is named with its cluster and its place among that cluster's nodes heard."""
    clock, said = Clock(), []
    listener = Listener(clock, said.append)
    listener.datagramReceived(announcement(id="a", name="lab-1", cluster="school"), ("127.0.0.1", 41236))
    listener.datagramReceived(announcement(id="x", name="other", port=9000), ("127.0.0.1", 41236))
    listener.datagramReceived(announcement(id="b", name="lab-2", port=8090, cluster="school\x1b[2J"),
                              ("127.0.0.1", 41236))
    listener.datagramReceived(announcement(id="c", name="hall", port=8091, cluster="school"), ("127.0.0.1", 41236))
    listener.datagramReceived(announcement(id="a", name="lab-1", users=4, seq=2, cluster="school"),
                              ("127.0.0.1", 41236))
    assert said == [
        'chatd "lab-1" at 127.0.0.1:8089, 1 user, node 1 of cluster "school"',
        'chatd "other" at 127.0.0.1:9000, 1 user',
        'chatd "lab-2" at 127.0.0.1:8090, 1 user, node 1 of cluster "school"',
        'chatd "hall" at 127.0.0.1:8091, 1 user, node 2 of cluster "school"',
        'chatd "lab-1" at 127.0.0.1:8089, 4 users, node 1 of cluster "school"',
    ]


def test_with_mdns_each_line_says_how_the_server_was_found():
    """
    Browsing mDNS too: an announcement's line starts with "multicast", a
    _chatd._tcp service's with "mdns"; a service listed again unchanged is
    not printed twice; its goodbye is one "gone" line; JSON says "found".
    """
    clock, said = Clock(), []
    listener = Listener(clock, said.append)
    listener.how = "multicast"
    listener.datagramReceived(announcement(), ("127.0.0.1", 41236))
    published = Announcement(id="def", name="lab", host="192.0.2.5", port=8088, users=0, uptime=0, seq=0, ts=0, web=8080)
    listener.service_found("chatd on lab._chatd._tcp.local.", published)
    listener.service_found("chatd on lab._chatd._tcp.local.", published)
    listener.service_gone("chatd on lab._chatd._tcp.local.")
    listener.service_gone("chatd on lab._chatd._tcp.local.")
    assert said == [
        'multicast  chatd "lab" at 127.0.0.1:8089, 1 user',
        'mdns       chatd "lab" at 192.0.2.5:8088, 0 users, web page http://192.0.2.5:8080/',
        'mdns       chatd "lab" at 192.0.2.5:8088 is gone (goodbye)',
    ]
    as_json = []
    json_listener = Listener(clock, as_json.append, as_json=True)
    json_listener.how = "multicast"
    json_listener.datagramReceived(announcement(), ("127.0.0.1", 41236))
    json_listener.service_found("chatd on lab._chatd._tcp.local.", published)
    assert [json.loads(line)["found"] for line in as_json] == ["multicast", "mdns"]


def test_servers_past_the_bound_are_counted_not_kept(monkeypatch):
    """A LAN full of forged servers: past MAX_SERVERS, announcements and mDNS services are counted, not listed."""
    monkeypatch.setattr("chatd.lan.listen.MAX_SERVERS", 2)
    clock, said = Clock(), []
    listener = Listener(clock, said.append)
    for index in range(3):
        listener.datagramReceived(announcement(id=f"id{index}", port=8000 + index), ("127.0.0.1", 41236))
    for index in range(3):
        found = Announcement(id=f"m{index}", name="lab", host="192.0.2.5", port=9000 + index, users=0, uptime=0, seq=0,
                             ts=0)
        listener.service_found(f"chatd on lab ({index})._chatd._tcp.local.", found)
    assert len(listener.servers) == len(listener.published) == 2
    assert listener.too_many == 2
    assert len(said) == 4
