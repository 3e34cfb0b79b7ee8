"""
End to end: several real `twistd -n chatd --cluster redis://...` nodes on
one real redis-server (the `redis` fixture), with telnet, web and IRC users
spread across them, and the faults an operator meets: a node killed, Redis
frozen, Redis restarted without its data, a node started before Redis.
Readiness comes from the log and the lines, never a sleep.
"""

from __future__ import annotations

import re
import signal
import time

import urllib.request

import pytest
from tests.chatd_process import ChatdProcess, LineClient, WebClient
from prometheus_client.parser import text_string_to_metric_families

from chatd.bus.redis import HEARTBEAT_SECONDS, NODE_TTL_SECONDS

MESSAGES = 30


class Node:
    def __init__(self, tmp_path, name, redis_url, *args):
        port_file = tmp_path / f"{name}.port"
        self.process = ChatdProcess(
            "--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", name, "--no-echo",
            "--burst", "100", "--cluster", redis_url, "--cluster-name", "e2e", *args, cwd=tmp_path)
        self.process.wait_for_log("chat room listening on")
        self.port = int(port_file.read_text())
        self.irc_port = int(self.process.wait_for_log("IRC listening on").rsplit(":", 1)[1])
        self.web_port = int(re.search(r":(\d+)$", self.process.wait_for_log("web page listening on").strip()).group(1))

    def metrics(self):
        """/metrics, as {name: value} of its samples without labels."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=10).read().decode()
        return {sample.name: sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if not sample.labels}

    def joined(self):
        return self.process.wait_for_log("cluster: joined")

    def telnet(self, nick):
        return LineClient(self.port).login(nick)

    def web(self, nick):
        return WebClient(self.web_port).login(nick)

    def irc(self, nick):
        client = LineClient(self.irc_port)
        client.send_line(f"NICK {nick}")
        client.send_line(f"USER {nick} 0 * :{nick}")
        while not client.read_line().endswith(f" 366 {nick} #lobby :End of /NAMES list"):
            pass
        return client


@pytest.fixture
def cluster(tmp_path, redis):
    started: list[Node] = []
    clients: list[object] = []

    class Cluster:
        @staticmethod
        def node(name, *args, joined=True):
            node = Node(tmp_path, name, redis.url, *args)
            started.append(node)
            if joined:
                node.joined()
            return node

        @staticmethod
        def keep(client):
            clients.append(client)
            return client

    yield Cluster
    for client in clients:
        client.close()
    for node in started:
        if node.process.process.poll() is None:
            node.process.stop()


# What each kind of client shows of a message in #lab: (nick, text).

def telnet_message(line):
    found = re.fullmatch(r"(?:\[#lab\] )?<([^>]+)> (.*)", line)
    return None if found is None else found.groups()


def irc_message(line):
    found = re.fullmatch(r":([^!]+)![^ ]+ PRIVMSG #lab :(.*)", line)
    return None if found is None else found.groups()


def collect(read, parse, senders, until_text="done"):
    """(nick, text) of every message read until each of `senders` said `until_text`."""
    got, finished = [], set()
    while finished != set(senders):
        message = parse(read())
        if message is not None:
            got.append(message)
            if message[1] == until_text:
                finished.add(message[0])
    return got


def web_reader(client):
    pending = []

    def read():
        while not pending:
            pending.extend(event for event in client.events() if event[0] == "said" and event[2] == "#lab")
        event = pending.pop(0)
        return event

    return read


def web_message(event):
    return event[3], event[4]


def test_three_nodes_with_every_front_door_are_one_chat(cluster):
    """
    Three real nodes with telnet, web and IRC users are one chat: channels, topics, messages and private messages
    cross.
    """
    one, two, three = cluster.node("one"), cluster.node("two"), cluster.node("three")
    alice = cluster.keep(one.telnet("alice"))
    bob = cluster.keep(two.web("bob"))
    carol = cluster.keep(three.irc("carol"))
    dave = cluster.keep(three.telnet("dave"))
    alice.send_line("/join #lab")
    bob.send_json({"type": "join", "channel": "#lab"})
    carol.send_line("JOIN #lab")
    dave.send_line("/join #lab")
    # alice made #lab (@); a node that had not heard of it yet when its user joined made it too, as in a netsplit.
    listed = members(dave, "#lab", 4)
    assert listed.replace("@", "") == "*** 4 users in #lab: alice, bob, carol, dave" and "@alice" in listed
    carol.send_line("NAMES #lab")  # her JOIN's own NAMES (sent before the others came) first, then this one's
    while not (line := carol.read_line()).endswith(" 366 carol #lab :End of /NAMES list"):
        pass
    while " 353 " not in (line := carol.read_line()):
        pass
    assert sorted(nick.lstrip("@+") for nick in line.split(":")[-1].split()) == ["alice", "bob", "carol", "dave"]
    # Node two hears of the others' joins a moment later than node three (through Redis): ask until it has.
    deadline = time.monotonic() + 10
    while True:
        bob.send_json({"type": "names", "channel": "#lab"})
        nicks = sorted(nick.lstrip("@+") for nick in bob.receive_until("members")["nicks"])
        if nicks == ["alice", "bob", "carol", "dave"] or time.monotonic() > deadline:
            break
    assert nicks == ["alice", "bob", "carol", "dave"]

    for number in range(MESSAGES):
        alice.send_line(f"/msg #lab alice {number}")
        bob.send_json({"type": "say", "channel": "#lab", "text": f"bob {number}"})
        carol.send_line(f"PRIVMSG #lab :carol {number}")
    for client, say in ((alice, lambda: alice.send_line("/msg #lab done")),
                        (bob, lambda: bob.send_json({"type": "say", "channel": "#lab", "text": "done"})),
                        (carol, lambda: carol.send_line("PRIVMSG #lab :done"))):
        say()

    def expected(*senders):
        return {sender: [f"{sender} {number}" for number in range(MESSAGES)] + ["done"] for sender in senders}

    def by_sender(messages):
        result: dict[str, list[str]] = {}
        for nick, text in messages:
            result.setdefault(nick, []).append(text)
        return result

    # exactly once, in each sender's order, whatever the node and the door
    assert by_sender(collect(alice.read_line, telnet_message, ["bob", "carol"])) == expected("bob", "carol")
    assert by_sender(collect(web_reader(bob), web_message, ["alice", "carol"])) == expected("alice", "carol")
    assert by_sender(collect(carol.read_line, irc_message, ["alice", "bob"])) == expected("alice", "bob")
    assert by_sender(collect(dave.read_line, telnet_message, ["alice", "bob", "carol"])) == expected(
        "alice", "bob", "carol")

    # private messages cross nodes and doors too
    carol.send_line("PRIVMSG alice :psst, from irc on three")
    while (line := alice.read_line()) != "*carol* psst, from irc on three":
        assert "carol" not in line
    alice.send_line("/msg bob and from telnet on one")
    assert bob.receive_until("private") == {"type": "private", "sender": "alice",
                                             "text": "and from telnet on one", "notice": False}
    metrics = two.metrics()
    assert metrics["chatd_bus_contact"] == 1 and metrics["chatd_bus_reconnects_total"] == 0
    assert metrics["chatd_bus_events_received_total"] >= 2 * (MESSAGES + 1)  # alice's and carol's messages at least
    assert metrics["chatd_bus_events_published_total"] >= MESSAGES + 1


def online(client, count):
    """Ask a telnet client's node who is online until it counts `count` (news of a login takes a moment to travel)."""
    return ask_until(client, "/names", re.compile(r"\*\*\* \d+ users? online: "), f"*** {count} users online")


def members(client, channel, count):
    return ask_until(client, f"/names {channel}", re.compile(rf"\*\*\* \d+ users? in {channel}: "),
                     f"*** {count} users in {channel}")


def ask_until(client, command, answer, wanted):
    """Send `command` until its answer (the line matching `answer`) starts with `wanted`; that line."""
    deadline = time.monotonic() + 10
    while True:
        client.send_line(command)
        while not answer.match(line := client.read_line()):
            pass
        if line.startswith(wanted):
            return line
        assert time.monotonic() < deadline, line


def test_a_nickname_is_unique_across_nodes(cluster):
    """A nickname held on one node is taken on the other, for a user of any door."""
    one, two = cluster.node("one"), cluster.node("two")
    cluster.keep(one.telnet("bob"))
    carol = cluster.keep(two.telnet("carol"))
    assert online(carol, 2) == "*** 2 users online: bob, carol"
    late = cluster.keep(LineClient(two.port))
    assert late.read_lines(2) == ["*** Welcome to chatd on two. 2 users online.", "*** Choose a nickname:"]
    late.send_line("BOB")
    assert late.read_lines(2) == ["*** Error: nickname is taken: BOB", "*** Choose a nickname:"]
    late.send_line("b\u043eb")  # a Cyrillic o
    assert late.read_line() == "*** Error: nickname is taken: b\u043eb (it looks like bob)"


def test_a_node_killed_takes_its_users_away_once_its_presence_expires(cluster):
    """kill -9 of a node: its users leave the other within its presence's TTL and a heartbeat."""
    one, two = cluster.node("one"), cluster.node("two")
    cluster.keep(one.telnet("alice"))
    bob = cluster.keep(two.telnet("bob"))
    online(bob, 2)
    one.process.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    while bob.read_line() != "*** alice has left (Server lost)":
        pass
    # three heartbeats, and the moment until the next look (and this machine's own delays)
    assert time.monotonic() - killed < NODE_TTL_SECONDS + HEARTBEAT_SECONDS + 1.5
    assert "stopped answering; its users have left" in two.process.wait_for_log("cluster: node ")
    newcomer = cluster.keep(two.telnet("alice"))  # the nickname is free again
    assert online(newcomer, 2) == "*** 2 users online: alice, bob"


def heard(client, nick, count):
    """The next `count` texts `nick` said, as `client` reads them (passing over the rest)."""
    texts = []
    while len(texts) < count:
        message = telnet_message(client.read_line())
        if message is not None and message[0] == nick:
            texts.append(message[1])
    return texts


def nothing_within(client, seconds):
    """True if `client` reads no line for `seconds`."""
    client.sock.settimeout(seconds)
    try:
        line = client.read_line()
    except TimeoutError:
        return True
    finally:
        client.sock.settimeout(10)
    raise AssertionError(f"read {line!r}")


def test_nothing_is_lost_while_redis_is_frozen_for_ten_seconds(cluster, redis):
    """SIGSTOP of redis-server while users on two nodes keep talking for 10 s: all of it arrives, in order."""
    one, two = cluster.node("one"), cluster.node("two")
    alice = cluster.keep(one.telnet("alice"))
    bob = cluster.keep(two.telnet("bob"))
    online(bob, 2)
    online(alice, 2)
    redis.pause()
    said = 0
    try:
        for client in (alice, bob):
            while client.read_line() != "*** Lost contact with the rest of the chat; retrying":
                pass
        talking = time.monotonic()  # ten seconds from here: how soon the loss is noticed swings on a busy machine
        while time.monotonic() - talking < 10:  # both keep talking, a line a second each
            alice.send_line(f"alice {said}")
            bob.send_line(f"bob {said}")
            said += 1
            assert nothing_within(alice, 1), "nothing crosses a frozen Redis"
    finally:
        redis.resume()
    alice.send_line(f"alice {said}")
    bob.send_line(f"bob {said}")
    for client in (alice, bob):
        while client.read_line() != "*** Back in contact with the rest of the chat":
            pass
    assert heard(bob, "alice", said + 1) == [f"alice {number}" for number in range(said + 1)]
    assert heard(alice, "bob", said + 1) == [f"bob {number}" for number in range(said + 1)]
    assert said >= 8
    assert nothing_within(alice, 0.5), "and nothing twice"
    one.process.wait_for_log("cluster: lost contact with Redis")
    assert one.metrics()["chatd_bus_reconnects_total"] == 1
    back = one.process.wait_for_log("cluster: back in contact")
    assert int(re.search(r"sent (\d+) events held meanwhile", back).group(1)) >= said  # and what came before it ran


def test_a_redis_restart_without_its_data_and_the_chat_goes_on(cluster, redis):
    """Redis restarted empty under two real nodes: both come back and the chat goes on."""
    one, two = cluster.node("one"), cluster.node("two")
    alice = cluster.keep(one.telnet("alice"))
    bob = cluster.keep(two.telnet("bob"))
    online(bob, 2)
    redis.kill()
    redis.start()
    for node in (one, two):
        assert "this node registered its users again" in node.process.wait_for_log("Redis lost the cluster's data")
    for client in (alice, bob):
        while client.read_line() != "*** Back in contact with the rest of the chat":
            pass
    alice.send_line("still one chat?")
    assert heard(bob, "alice", 1) == ["still one chat?"]
    carol = cluster.keep(cluster.node("three").telnet("carol"))  # a node that starts now learns who is here
    assert online(carol, 3) == "*** 3 users online: alice, bob, carol"


def test_a_node_started_while_redis_is_down_serves_its_users_and_joins_when_it_is_back(cluster, redis):
    """A real node started without Redis serves its users, says so, and joins when Redis comes."""
    redis.kill()
    one = cluster.node("one", joined=False)
    assert "does not answer yet" in one.process.wait_for_log("cluster: Redis at")
    alice = cluster.keep(one.telnet("alice"))
    dave = cluster.keep(one.telnet("dave"))
    alice.send_line("anyone?")
    assert heard(dave, "alice", 1) == ["anyone?"]
    redis.start()
    one.joined()
    two = cluster.node("two")
    bob = cluster.keep(two.telnet("bob"))
    assert online(bob, 3) == "*** 3 users online: alice, bob, dave"
    bob.send_line("hello, node one")
    assert heard(alice, "bob", 1) == ["hello, node one"]


def test_a_node_frozen_past_its_presence_is_gone_then_back(cluster):
    """SIGSTOP of a node for longer than its presence lives: its users leave; SIGCONT: they are back, and talk."""
    one, two = cluster.node("one"), cluster.node("two")
    alice = cluster.keep(one.telnet("alice"))
    bob = cluster.keep(two.telnet("bob"))
    online(bob, 2)
    one.process.process.send_signal(signal.SIGSTOP)
    try:
        while bob.read_line() != "*** alice has left (Server lost)":
            pass
    finally:
        one.process.process.send_signal(signal.SIGCONT)
    while bob.read_line() != "*** alice has joined (2 users online)":
        pass
    alice.send_line("I was only frozen")
    assert heard(bob, "alice", 1) == ["I was only frozen"]


def test_a_node_stopped_while_redis_is_frozen_stops_at_once_and_says_what_it_could_not_send(cluster, redis):
    """A node stopped while Redis is frozen stops at once and logs how many events never reached the others."""
    one = cluster.node("one")
    alice = cluster.keep(one.telnet("alice"))
    bob = cluster.keep(one.telnet("bob"))
    redis.pause()
    try:
        one.process.wait_for_log("cluster: lost contact with Redis")
        alice.send_line("said while Redis is frozen")
        assert heard(bob, "alice", 1) == ["said while Redis is frozen"]  # the node has it
        held = one.metrics()["chatd_bus_events_held"]  # that line, and whatever Redis had not answered yet
        assert held >= 1
        began = time.monotonic()
        assert one.process.stop() == 0
        assert time.monotonic() - began < 5
    finally:
        redis.resume()
    # and alice and bob leaving as the node stops
    assert any(f"cluster: stopping out of contact with Redis: {int(held) + 2} events of this node's users never "
               "reached the other nodes" in line for line in one.process.log)


def test_an_account_a_note_and_history_are_the_clusters(cluster, redis):
    """
    alice registers on node one and leaves; bob, on node two, leaves her a
    message (node two learnt of her account from the cluster's Redis);
    alice comes back on node two with her password and gets it, once; the
    lines said on node one are node two's /history too.  Nobody on node two
    can take "alice" without the password.
    """
    one, two = cluster.node("one"), cluster.node("two")
    alice = one.telnet("alice")
    alice.send_line("/register tea and biscuits")
    alice.read_until(b"is registered to you now")
    alice.send_line("said on node one")
    alice.send_line("/quit")
    alice.read_until(b"*** Bye!")
    two.process.wait_for_log("accounts: 1 registered and 0 freed in the cluster")  # node two knows her account
    bob = cluster.keep(two.telnet("bob"))
    bob.send_line("/msg alice your parcel is at the desk")
    bob.read_until(b"*** alice is away; they get your message when they log in\r\n")
    back = cluster.keep(LineClient(two.port))
    back.read_lines(2)
    back.send_line("alice")
    assert back.read_line() == "*** alice is registered; password:"
    back.send_line("tea and biscuits")
    seen = back.read_until(b"*bob* your parcel is at the desk\r\n").replace(b"\xff\xfb\x01", b"").decode()
    assert "*** 1 message while you were away:" in seen
    back.send_line("/history 5")
    assert "<alice> said on node one" in back.read_until(b"*** End of history\r\n").decode()
