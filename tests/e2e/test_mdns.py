"""
--mdns with the real twistd, seen by python-zeroconf's own ServiceBrowser
(a browser chatd did not write), on loopback multicast only: chatd
publishes with --mdns-interface 127.0.0.1 and the browsers here send and
listen on 127.0.0.1 alone.
"""

import queue
import re
import socket
import struct
import time
import urllib.request

import pytest
from tests.chatd_process import ChatdProcess, LineClient, Process, listen_command
from tests.conftest import free_port_run, occupied
from zeroconf import IPVersion, ServiceBrowser, Zeroconf

from chatd.lan.dnssd import CHATD_TYPE

TYPES = ["_http._tcp.local.", "_https._tcp.local.", "_irc._tcp.local.", "_ircs._tcp.local.", "_telnet._tcp.local.",
         CHATD_TYPE]
MDNS_GROUP, MDNS_PORT = "224.0.0.251", 5353
WAIT_SECONDS = 15


class Browser:
    """python-zeroconf browsing `types` on 127.0.0.1; what it finds and loses arrives in `events`."""

    def __init__(self, types=TYPES):
        self.zeroconf = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        self.events = queue.Queue()
        self.browsers = [ServiceBrowser(self.zeroconf, type_, self) for type_ in types]

    def add_service(self, zc, type_, name):
        info = zc.get_service_info(type_, name, 3000)
        self.events.put(("added", name, info, time.monotonic()))

    def update_service(self, zc, type_, name):
        self.events.put(("updated", name, zc.get_service_info(type_, name, 3000), time.monotonic()))

    def remove_service(self, zc, type_, name):
        self.events.put(("removed", name, None, time.monotonic()))

    def wait_for(self, kind, names, timeout=WAIT_SECONDS):
        """{name: (info, when)} for each of `names` once a `kind` event came for it (others are passed over)."""
        found, deadline = {}, time.monotonic() + timeout
        while set(names) - set(found):
            try:
                event, name, info, when = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind} for {sorted(set(names) - set(found))}; found {sorted(found)}") from None
            if event == kind and name in names:
                found[name] = (info, when)
        return found

    def close(self):
        for browser in self.browsers:
            browser.cancel()
        self.zeroconf.close()


@pytest.fixture
def browser():
    found = Browser()
    yield found
    found.close()


def logged(server, pattern):
    """The first group of `pattern` in the first line of chatd's log so far that matches it."""
    for line in server.lines["stdout"]:
        match = re.search(pattern, line)
        if match:
            return match.group(1)
    raise AssertionError(f"no line matches {pattern!r}:\n" + "\n".join(server.lines["stdout"]))


def published(server):
    """Once chatd has published: the ports its log says it listens on, by service type (after any fallback)."""
    server.wait_for_log("mDNS: published")
    log = "\n".join(server.lines["stdout"])
    ports = {type_: int(match.group(1))
             for type_, what in (("_telnet._tcp.local.", "chat room"), ("_irc._tcp.local.", "IRC"),
                                 ("_ircs._tcp.local.", "IRC over TLS"), ("_http._tcp.local.", "web page"),
                                 ("_https._tcp.local.", "web page over TLS"))
             if (match := re.search(rf"\] {what} listening on [0-9.]+:(\d+)", log))}
    ports[CHATD_TYPE] = ports["_telnet._tcp.local."]
    return ports


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mdns_chatd(tmp_path, *args):
    return ChatdProcess("--name", "lab", "--echo-port", "0", "--mdns", "--mdns-interface", "127.0.0.1", *args,
                        cwd=tmp_path)


def test_a_browser_finds_every_service_with_its_real_ports_and_txt(tmp_path, browser):
    """
    Every door is published under "chatd on lab" with the port chatd got
    after falling back (its chat and web ports were taken), the address of
    the interface, path=/ for the web page, and _chatd._tcp's TXT naming
    every port, the fingerprint and the users online; the web page opens
    from what the browser lists, and so does the chat port.
    """
    chat_first, web_first = free_port_run(2), free_port_run(2)
    with occupied("0.0.0.0", chat_first), occupied("0.0.0.0", web_first):
        server = mdns_chatd(tmp_path, "--port", str(chat_first), "--web-port", str(web_first))
        try:
            ports = published(server)
            assert ports["_telnet._tcp.local."] == chat_first + 1 and ports["_http._tcp.local."] == web_first + 1
            fingerprint = logged(server, r"SHA-256 fingerprint ([0-9A-F:]+)")
            assert logged(server, r"mDNS: published (.*) \(") == '"chatd on lab" on 127.0.0.1'
            found = browser.wait_for("added", [f"chatd on lab.{type_}" for type_ in TYPES])
            for type_ in TYPES:
                info, _ = found[f"chatd on lab.{type_}"]
                assert info.port == ports[type_], type_
                assert info.parsed_addresses() == ["127.0.0.1"]
                assert info.server == f"{socket.gethostname().split('.')[0]}.local."
            assert found["chatd on lab._http._tcp.local."][0].decoded_properties == {"path": "/"}
            assert found["chatd on lab._https._tcp.local."][0].decoded_properties == {"path": "/"}
            txt = found[f"chatd on lab.{CHATD_TYPE}"][0].decoded_properties
            assert {key: txt[key] for key in ("txtvers", "name", "chat", "web", "irc", "https", "ircs", "users")} == {
                "txtvers": "1", "name": "lab", "chat": str(ports["_telnet._tcp.local."]),
                "web": str(ports["_http._tcp.local."]), "irc": str(ports["_irc._tcp.local."]),
                "https": str(ports["_https._tcp.local."]), "ircs": str(ports["_ircs._tcp.local."]), "users": "0"}
            assert txt["fingerprint"] == fingerprint and "cluster" not in txt

            web, _ = found["chatd on lab._http._tcp.local."]
            url = f"http://{web.parsed_addresses()[0]}:{web.port}{web.decoded_properties['path']}"
            with urllib.request.urlopen(url, timeout=10) as page:
                assert page.status == 200 and b"chatd" in page.read()
            telnet, _ = found["chatd on lab._telnet._tcp.local."]
            LineClient(telnet.port, telnet.parsed_addresses()[0]).login("found").close()
        finally:
            server.stop()


def test_a_second_chatd_of_the_same_name_is_renamed(tmp_path, browser):
    """Another chatd called lab is on the LAN: this one takes "chatd on lab (2)" for every type, and says so."""
    first = mdns_chatd(tmp_path, "--port", "0", "--no-tls")
    second = None
    try:
        first.wait_for_log('mDNS: published "chatd on lab" on 127.0.0.1')
        second = mdns_chatd(tmp_path, "--port", "0", "--no-tls")
        assert 'the name "chatd on lab" is taken on the LAN; trying "chatd on lab (2)"' in second.wait_for_log(
            "mDNS: the name")
        chat_port = published(second)[CHATD_TYPE]
        assert logged(second, r"mDNS: (published .*) \(") == 'published "chatd on lab (2)" on 127.0.0.1'
        found = browser.wait_for("added", [f"chatd on lab (2).{type_}" for type_ in
                                           ("_http._tcp.local.", "_irc._tcp.local.", "_telnet._tcp.local.", CHATD_TYPE)])
        assert found[f"chatd on lab (2).{CHATD_TYPE}"][0].port == chat_port
    finally:
        for server in (second, first):
            if server is not None:
                server.stop()


def test_stopping_says_goodbye_so_browsers_drop_it_at_once(tmp_path, browser):
    """
    On SIGTERM chatd sends goodbyes (TTL 0) before it stops: a browser drops
    every service within a second, not when the records expire (120 s on).
    """
    server = mdns_chatd(tmp_path, "--port", "0")
    names = [f"chatd on lab.{type_}" for type_ in TYPES]
    try:
        server.wait_for_log("mDNS: published")
        browser.wait_for("added", names)
    finally:
        stopped_at = time.monotonic()
        assert server.stop() == 0
    gone = browser.wait_for("removed", names, timeout=5)
    assert max(when for _, when in gone.values()) - stopped_at < 1.0


def mdns_listener():
    """A socket on the mDNS group and port through 127.0.0.1, shared with any other program on that port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("", MDNS_PORT))
    listener.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        struct.pack("4s4s", socket.inet_aton(MDNS_GROUP), socket.inet_aton("127.0.0.1")))
    listener.setblocking(False)
    return listener


def test_without_mdns_nothing_is_sent_to_the_mdns_group(tmp_path):
    """
    chatd without --mdns (but announcing by multicast through 127.0.0.1,
    so its LAN services are running) sends nothing to 224.0.0.251:5353
    while it makes its three first announcements.
    """
    announcement_port = free_udp_port()
    with mdns_listener() as heard:
        server = ChatdProcess("--port", "0", "--echo-port", "0", "--multicast", "--multicast-interface", "127.0.0.1",
                              "--multicast-port", str(announcement_port), "--announce-interval", "1", cwd=tmp_path)
        listener = Process(listen_command("--interface", "127.0.0.1", "--port", str(announcement_port), "--count", "3"),
                           tmp_path)
        try:
            assert listener.finish() == 0, listener.lines
        finally:
            server.stop()
        with pytest.raises(BlockingIOError):
            datagram = heard.recv(9000)
            pytest.fail(f"chatd without --mdns sent to the mDNS group: {datagram!r}")
    assert not any("mDNS" in line for line in server.lines["stdout"])


def test_chatd_listen_lists_what_mdns_finds_and_discover_finds_it_too(tmp_path):
    """
    A chatd that only publishes by mDNS (no announcements): chatd-listen
    --mdns lists it in the announcement's line format with "mdns" first,
    --discover prints its HOST PORT, and the goodbye is listed as it goes.
    """
    server = mdns_chatd(tmp_path, "--port", "0", "--no-tls")
    try:
        ports = published(server)
        chat_port, web_port, irc_port = (ports[type_] for type_ in (CHATD_TYPE, "_http._tcp.local.", "_irc._tcp.local."))
        discover = Process(listen_command("--discover", "--interface", "127.0.0.1", "--port", str(free_udp_port()),
                                          "--timeout", "10"), tmp_path)
        assert discover.finish() == 0, discover.lines
        assert discover.lines["stdout"] == [f"127.0.0.1 {chat_port}"]
        listing = Process(listen_command("--mdns", "--interface", "127.0.0.1", "--port", str(free_udp_port()),
                                         "--timeout", "20"), tmp_path)
        line = listing.wait_for_line("mdns ")
        assert line == (f'mdns       chatd "lab" at 127.0.0.1:{chat_port}, 0 users, web page http://127.0.0.1:{web_port}/, '
                        f"IRC {irc_port}")
    finally:
        server.stop()
    assert listing.wait_for_line("is gone") == f'mdns       chatd "lab" at 127.0.0.1:{chat_port} is gone (goodbye)'
    listing.process.terminate()
    listing.finish()
