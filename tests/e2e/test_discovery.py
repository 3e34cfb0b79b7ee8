"""
Discovery and echo on loopback, with the real twistd process and the real
chatd-listen: multicast through 127.0.0.1, broadcast to 127.255.255.255,
nothing through the machine's real interfaces.
"""

import json
import socket
from pathlib import Path

import pytest
import pytest_twisted
from tests.chatd_process import ChatdProcess, LineClient, Process, listen_command
from tests.conftest import free_port_run, occupied
from twisted.internet import defer, reactor

from chatd.lan.announcement import decode, encode_query
from chatd.service.tap import Options, makeService

GROUP = "239.255.88.88"


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("0.0.0.0", 0))
        return probe.getsockname()[1]


@pytest.fixture
def announcing(tmp_path):
    """chatd on 127.0.0.1 whose chat port was taken (so it fell back), announcing every second."""
    first = free_port_run(2)
    multicast_port, broadcast_port = free_udp_port(), free_udp_port()
    with occupied("127.0.0.1", first):
        server = ChatdProcess(
            "--port", str(first), "--interface", "127.0.0.1", "--echo-port", "0", "--name", "lab",
            "--multicast", "--multicast-interface", "127.0.0.1", "--multicast-port", str(multicast_port),
            "--broadcast", "--broadcast-address", "127.255.255.255", "--broadcast-port", str(broadcast_port),
            "--announce-interval", "1",
            cwd=tmp_path,
        )
        try:
            fingerprint = server.wait_for_log("TLS certificate").rsplit(" ", 1)[1]
            server.wait_for_log("chat room listening on 127.0.0.1")
            ports = {key: int(server.wait_for_log(f"{what} listening on 127.0.0.1:").rsplit(":", 1)[1])
                     for key, what in (("irc_port", "IRC"), ("irc_tls_port", "IRC over TLS"),
                                       ("web_port", "web page"), ("web_tls_port", "web page over TLS"))}
            server.wait_for_log("broadcast announcer announcing")  # the last service to start
            yield {"server": server, "chat_port": first + 1, **ports, "fingerprint": fingerprint,
                   "multicast": multicast_port, "broadcast": broadcast_port}
        finally:
            if server.process.poll() is None:
                server.stop()


def listen(tmp_path, *args):
    listener = Process(listen_command(*args), tmp_path)
    listener.wait_for_line("listening for chatd announcements", "stderr")
    return listener


def next_announcement(listener):
    return json.loads(listener.wait_for_line("{"))


def test_multicast_announces_real_port_live_user_count_and_stopping(announcing, tmp_path):
    """After a forced fallback the announced port is the real one; users follow joins and leaves; 'stopping' on shutdown."""
    listener = listen(tmp_path, "--interface", "127.0.0.1", "--port", str(announcing["multicast"]), "--json", "--timeout", "30")
    try:
        first = next_announcement(listener)
        assert (first["port"], first["host"], first["name"], first["users"], first["state"], first["web"]) == (
            announcing["chat_port"], "127.0.0.1", "lab", 0, "up", announcing["web_port"])
        assert (first["irc"], first["https"], first["ircs"], first["fingerprint"]) == (
            announcing["irc_port"], announcing["web_tls_port"], announcing["irc_tls_port"], announcing["fingerprint"])
        alice = LineClient(announcing["chat_port"]).login("alice")
        while (seen := next_announcement(listener))["users"] != 1:
            assert seen["users"] == 0
        bob = LineClient(announcing["chat_port"]).login("bob")
        while (seen := next_announcement(listener))["users"] != 2:
            assert seen["users"] == 1
        bob.send_line("/quit")
        while (seen := next_announcement(listener))["users"] != 1:
            assert seen["users"] == 2
        alice.close()
        announcing["server"].stop()
        while (seen := next_announcement(listener))["state"] != "stopping":
            pass
        assert seen["port"] == announcing["chat_port"]
        assert seen["seq"] > first["seq"]
    finally:
        listener.stop()


def test_multicast_announces_the_live_channel_count(announcing, tmp_path):
    """"channels" counts the default channel, then follows a channel's creation and its vanishing."""
    listener = listen(tmp_path, "--interface", "127.0.0.1", "--port", str(announcing["multicast"]), "--json", "--timeout", "30")
    try:
        assert next_announcement(listener)["channels"] == 1
        alice = LineClient(announcing["chat_port"]).login("alice")
        alice.send_line("/join lab")
        assert alice.read_line() == "*** You joined #lab (1 user)"
        while (seen := next_announcement(listener))["channels"] != 2:
            assert seen["channels"] == 1
        alice.send_line("/part")
        while (seen := next_announcement(listener))["channels"] != 1:
            assert seen["channels"] == 2
        alice.close()
    finally:
        listener.stop()


def test_readable_lines_and_gone_on_stopping(announcing, tmp_path):
    """
    Without --json: one readable line per announcement (every door's port
    and the TLS certificate's fingerprint), and 'is gone' after the stopping
    datagram.
    """
    listener = listen(tmp_path, "--interface", "127.0.0.1", "--port", str(announcing["multicast"]), "--timeout", "30")
    try:
        port = announcing["chat_port"]
        assert listener.wait_for_line("chatd") == (
            f'chatd "lab" at 127.0.0.1:{port}, 0 users, web page http://127.0.0.1:{announcing["web_port"]}/ and '
            f'https://127.0.0.1:{announcing["web_tls_port"]}/, IRC {announcing["irc_port"]} and '
            f'{announcing["irc_tls_port"]} (TLS), TLS certificate SHA-256 {announcing["fingerprint"]}')
        announcing["server"].stop()
        assert listener.wait_for_line("is gone") == f'chatd "lab" at 127.0.0.1:{port} is gone (stopping)'
    finally:
        listener.stop()


def test_broadcast_announcements_reach_a_broadcast_listener(announcing, tmp_path):
    """--broadcast listens on the broadcast port and hears the same server."""
    listener = listen(tmp_path, "--broadcast", "--port", str(announcing["broadcast"]), "--json", "--count", "1")
    assert listener.finish() == 0
    (line,) = [line for line in listener.lines["stdout"] if line]
    assert json.loads(line)["port"] == announcing["chat_port"]


@pytest.mark.parametrize("mode", ["multicast", "broadcast"])
def test_discover_prints_host_and_port(announcing, tmp_path, mode):
    """--discover prints HOST PORT of the server and exits 0, ready for `telnet $(...)`."""
    # --interface keeps --discover's mDNS browsing on loopback too.
    args = ["--discover", "--port", str(announcing[mode]), "--interface", "127.0.0.1"]
    args += ["--broadcast", "--broadcast-address", "127.255.255.255"] if mode == "broadcast" else []
    listener = Process(listen_command(*args), tmp_path)
    assert listener.finish() == 0
    assert listener.lines["stdout"] == [f"127.0.0.1 {announcing['chat_port']}"]
    host, port = listener.lines["stdout"][0].split()
    LineClient(int(port), host).login("found").close()


def test_a_padded_query_gets_a_unicast_answer_at_once(announcing):
    """A query to the group is answered by unicast to the querier's own port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as asker:
        asker.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        asker.bind(("127.0.0.1", 0))
        asker.settimeout(5)
        asker.sendto(encode_query(), (GROUP, announcing["multicast"]))
        answer, source = asker.recvfrom(2048)
    found = decode(answer)
    assert (found.port, found.host, found.state) == (announcing["chat_port"], "127.0.0.1", "up")
    assert len(answer) <= len(encode_query())


def udp_sockets_on(port):
    """The local addresses of this host's IPv4 UDP sockets bound to `port` (from /proc/net/udp)."""
    found = []
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        address, bound_port = line.split()[1].split(":")
        if int(bound_port, 16) == port:
            found.append(socket.inet_ntoa(int(address, 16).to_bytes(4, "little")))
    return found


def test_announcers_listen_on_the_group_and_the_broadcast_address_only(announcing):
    """The query sockets are bound to the group and to the broadcast address, not to every address of the host."""
    assert udp_sockets_on(announcing["multicast"]) == [GROUP]
    assert udp_sockets_on(announcing["broadcast"]) == ["127.255.255.255"]


def test_discover_gives_up_after_its_timeout(tmp_path):
    """No server: exit 1 and one line on stderr."""
    listener = Process(listen_command("--discover", "--interface", "127.0.0.1", "--port", str(free_udp_port()), "--timeout", "0.5"), tmp_path)
    assert listener.finish() == 1
    assert listener.lines["stdout"] == []
    assert listener.lines["stderr"][-1] == "chatd-listen: no chatd answered within 0.5 s"


def test_listener_ignores_malformed_datagrams_and_reports_how_many(tmp_path):
    """Junk sent to the group is not printed; the count is reported on exit."""
    port = free_udp_port()
    listener = listen(tmp_path, "--interface", "127.0.0.1", "--port", str(port), "--timeout", "1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        for junk in (b"hello", b"\xff\xfe", b'{"service": "chatd", "v": 1, "port": "x"}'):
            sender.sendto(junk, (GROUP, port))
        sender.sendto(encode_query(), (GROUP, port))  # another listener's query is no junk
    assert listener.finish() == 0
    assert listener.lines["stdout"] == []
    assert listener.lines["stderr"][-1] == "chatd-listen: ignored 3 datagram(s) that were not chatd announcements"


# -- echo over real sockets, in-process


@pytest.fixture
def echo_port():
    options = Options()
    options.parseOptions(["--port", "0", "--interface", "0.0.0.0", "--echo-port", "0", "--echo-rate", "5"])
    service = makeService(options, reactor)
    service.startService()
    yield service.getServiceNamed("echo").port
    pytest_twisted.blockon(defer.maybeDeferred(service.stopService))


def udp_client(host="127.0.0.1"):
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    client.bind((host, 0))
    client.setblocking(False)
    return client


@pytest_twisted.inlineCallbacks
def test_echo_replies_over_loopback_but_not_to_a_broadcast(echo_port):
    """A unicast datagram comes back byte for byte; the same sent to 127.255.255.255 gets nothing."""
    client = udp_client()
    try:
        client.sendto(b"to everyone", ("127.255.255.255", echo_port))
        client.sendto(b"\x00just me\xff", ("127.0.0.1", echo_port))
        reply = yield receive(client)
        # Had the broadcast been echoed, its reply would have come first.
        assert reply == b"\x00just me\xff"
    finally:
        client.close()


@pytest_twisted.inlineCallbacks
def test_echo_does_not_answer_a_datagram_over_8_kib(echo_port):
    """9000 bytes get no reply (not a cut one); the next, small datagram does."""
    client = udp_client()
    try:
        client.sendto(b"x" * 9000, ("127.0.0.1", echo_port))
        client.sendto(b"small", ("127.0.0.1", echo_port))
        assert (yield receive(client)) == b"small"
    finally:
        client.close()


@pytest_twisted.inlineCallbacks
def test_echo_rate_limit_over_loopback(echo_port):
    """At --echo-rate 5: a burst of 10 comes back, the 11th does not; another source is unaffected."""
    client, other = udp_client(), udp_client("127.0.0.2")
    try:
        for index in range(11):
            client.sendto(b"%d" % index, ("127.0.0.1", echo_port))
        other.sendto(b"marker", ("127.0.0.1", echo_port))
        # The marker was handled after the 11th; loopback delivers at once, so
        # once its reply is here, a reply to the 11th would be waiting too.
        assert (yield receive(other)) == b"marker"
        replies = []
        for _ in range(10):
            replies.append((yield receive(client)))
        assert replies == [b"%d" % index for index in range(10)]
        with pytest.raises(BlockingIOError):
            client.recv(100)
    finally:
        client.close()
        other.close()


def receive(client, timeout=5.0):
    """A Deferred for the next datagram on a non-blocking socket, polling the reactor."""
    received = defer.Deferred()
    deadline = reactor.seconds() + timeout

    def poll():
        try:
            received.callback(client.recv(2048))
        except BlockingIOError:
            if reactor.seconds() > deadline:
                received.errback(TimeoutError("no datagram"))
            else:
                reactor.callLater(0.005, poll)

    poll()
    return received


def test_echo_port_falls_back_when_taken(tmp_path):
    """The echo service follows the chat port's fallback rules, with UDP log lines."""
    first = free_port_run(2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind(("127.0.0.1", first))
        server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--echo-port", str(first), cwd=tmp_path)
        try:
            assert server.wait_for_log("UDP port").endswith(f"UDP port {first} on 127.0.0.1 is in use; trying {first + 1}")
            assert server.wait_for_log("echo service listening").endswith(
                f"echo service listening on 127.0.0.1:{first + 1} ({first} was taken)")
        finally:
            server.stop()


@pytest.mark.parametrize("mode", [[], ["--broadcast"]])
def test_listen_on_a_port_held_without_sharing_says_so_in_one_line(tmp_path, mode):
    """A port another program holds without SO_REUSEPORT (an echo, say): one line on stderr, status 1, no traceback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("0.0.0.0", 0))
        port = holder.getsockname()[1]
        listener = Process(listen_command(*mode, "--port", str(port), "--timeout", "5"), tmp_path)
        assert listener.finish() == 1
    assert listener.lines["stderr"] == [
        f"chatd-listen: cannot listen on UDP port {port}: Address already in use (another program holds it without sharing it)"]
    assert listener.lines["stdout"] == []


def test_two_servers_on_one_host_leave_the_announcement_ports_free(tmp_path):
    """A second chatd whose echo port is taken falls back past the broadcast and multicast ports, so listeners still start."""
    chat, echo = free_port_run(2), free_port_run(5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first_echo:
        first_echo.bind(("127.0.0.1", echo))
        server = ChatdProcess("--port", str(chat), "--interface", "127.0.0.1", "--fallback", "0", "--echo-port", str(echo),
                              "--broadcast-port", str(echo + 1), "--multicast-port", str(echo + 2), cwd=tmp_path)
        try:
            line = server.wait_for_log("echo service listening on")
            assert line.endswith(f"echo service listening on 127.0.0.1:{echo + 3} ({echo} was taken)")
        finally:
            server.stop()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--interface", "eth0"], "--interface: 'eth0' is not an IPv4 address"),
        (["--group", "1.2.3.4"], "--group: '1.2.3.4' is not a multicast address (224.0.0.0-239.255.255.255)"),
        (["--port", "99999"], "--port: '99999' is not a number from 1 to 65535"),
    ],
)
def test_listen_refuses_a_bad_option_in_one_line(tmp_path, args, message):
    """A bad address or port: one line on stderr naming the option, status 2, no traceback."""
    listener = Process(listen_command(*args, "--timeout", "1"), tmp_path)
    assert listener.finish() == 2
    assert listener.lines["stderr"] == [f"chatd-listen: {message} (chatd-listen --help lists the options)"]
