"""
A LAN in network namespaces the test creates and deletes itself: chatd in one
namespace announcing by multicast and broadcast, and in the other
`chatd-listen --discover` finds it and `nc` chats through the address found;
or chatd publishing by mDNS, and in the other namespace Debian's avahi-daemon
and `avahi-browse` list it and the page opens from what they list.

Addresses are test-only (198.18.88.0/24, the benchmarking range) and exist
only inside the two namespaces; each namespace routes everything, broadcast
included, over its end of the veth pair, so nothing reaches a real interface.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest
from tests.chatd_process import TIMEOUT_SECONDS, Process, environment, twistd_command

SERVER_ADDRESS, CLIENT_ADDRESS = "198.18.88.1", "198.18.88.2"


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def lan():
    """Two namespaces joined by a veth pair; yields their names; always removed."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces (CI runs as root)")
    if shutil.which("ip") is None:
        pytest.skip("needs the `ip` command (iproute2) to create network namespaces")
    server, client = f"chatd-srv-{os.getpid()}", f"chatd-cli-{os.getpid()}"
    try:
        ip("netns", "add", server)
        ip("netns", "add", client)
        ip("link", "add", "chatd-veth0", "netns", server, "type", "veth", "peer", "name", "chatd-veth1", "netns", client)
        for namespace, device, address in ((server, "chatd-veth0", SERVER_ADDRESS), (client, "chatd-veth1", CLIENT_ADDRESS)):
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", device)
            ip("-n", namespace, "link", "set", device, "up")
            ip("-n", namespace, "link", "set", "lo", "up")
            ip("-n", namespace, "route", "add", "default", "dev", device)
        yield server, client
    finally:
        for namespace in (server, client):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


def in_namespace(namespace, command):
    return ["ip", "netns", "exec", namespace, *command]


@pytest.mark.parametrize("mode", ["multicast", "broadcast"])
def test_discover_and_chat_across_a_lan(lan, tmp_path, mode):
    """chatd-listen --discover in one namespace finds chatd in the other, and nc chats there."""
    server_ns, client_ns = lan
    chatd = Process(
        in_namespace(server_ns, twistd_command("--port", "8088", "--name", "lan", "--multicast", "--broadcast")),
        tmp_path,
    )
    try:
        chatd.wait_for_log("chat room listening on 0.0.0.0:8088")
        chatd.wait_for_log("broadcast announcer announcing")
        args = ["--discover", "--timeout", "10"] + (["--broadcast"] if mode == "broadcast" else [])
        discover = Process(in_namespace(client_ns, [sys.executable, "-m", "chatd.lan.listen", *args]), tmp_path)
        assert discover.finish(timeout=20) == 0, discover.lines
        assert discover.lines["stdout"] == [f"{SERVER_ADDRESS} 8088"]

        host, port = discover.lines["stdout"][0].split()
        chat = subprocess.run(
            in_namespace(client_ns, ["nc", "-N", host, port]),
            input=b"lanuser\n/list\n/quit\n", capture_output=True, timeout=TIMEOUT_SECONDS, env=environment(),
        )
        assert chat.stdout == (
            b"*** Welcome to chatd on lan. 0 users online.\r\n"
            b"*** Choose a nickname:\r\n"
            b"*** Hello lanuser! Type /help for commands.\r\n"
            b"*** 1 user online: lanuser\r\n"
            b"*** Bye!\r\n"
        )
    finally:
        chatd.stop()


# The avahi-daemon of the client namespace: its own name (not the host's, which chatd publishes), no
# publishing of its own, on the veth only; on a D-Bus system bus of its own (below).
AVAHI_CONF = """\
[server]
host-name=browser
use-ipv4=yes
use-ipv6=no
allow-interfaces=chatd-veth1
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
disable-publishing=yes
"""
BUS_CONF = """\
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


@pytest.fixture
def avahi(lan, tmp_path):
    """
    In the client namespace: a D-Bus system bus of the test's own and an
    avahi-daemon on it (in a mount namespace with its own /run, so it
    touches neither the host's /run/avahi-daemon nor a host daemon).
    Yields the environment avahi-browse needs to reach it.
    """
    missing = [program for program in ("avahi-daemon", "avahi-browse", "dbus-daemon", "unshare")
               if shutil.which(program) is None]
    if missing:
        # Not installed by the Makefile: installing avahi-daemon starts it on the machine's real interfaces.
        pytest.skip(f"needs {', '.join(missing)} (Debian's avahi-daemon, avahi-utils and dbus)")
    _, client_ns = lan
    bus = tmp_path / "bus"
    (tmp_path / "bus.conf").write_text(BUS_CONF.format(path=bus))
    (tmp_path / "avahi.conf").write_text(AVAHI_CONF)
    env = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={bus}"}
    dbus = Process(in_namespace(client_ns, ["dbus-daemon", f"--config-file={tmp_path / 'bus.conf'}", "--nofork",
                                            "--nopidfile", "--print-address"]), tmp_path)
    daemon = None
    try:
        dbus.wait_for_line("unix:path=")
        daemon = Process(in_namespace(client_ns, [
            "unshare", "--mount", "sh", "-c", "mount -t tmpfs tmpfs /run && mkdir /run/avahi-daemon && "
            f"exec avahi-daemon -f {tmp_path / 'avahi.conf'} --no-drop-root --no-chroot --no-rlimits"]), tmp_path, env)
        daemon.wait_for_line("Server startup complete", "stderr")
        yield env
    finally:
        if daemon is not None:
            daemon.stop()
        dbus.stop()


def test_avahi_browse_lists_chatd_and_the_page_opens_from_what_it_lists(lan, avahi, tmp_path):
    """
    chatd with --mdns and no --mdns-interface publishes on its one
    interface but loopback, with that interface's address: avahi-browse,
    in the other namespace, resolves every door of "chatd on lab" to
    198.18.88.1 and the ports chatd got, with _chatd._tcp's TXT; the page
    opens from the address and port it lists; on stop avahi drops it.
    """
    server_ns, client_ns = lan
    chatd = Process(in_namespace(server_ns, twistd_command("--port", "8088", "--name", "lab", "--mdns")), tmp_path)
    watching = None
    try:
        chatd.wait_for_log("mDNS: published")
        log = "\n".join(chatd.lines["stdout"])
        assert f'"chatd on lab" on {SERVER_ADDRESS} (' in log
        ports = {door: int(re.search(rf"\] {what} listening on 0.0.0.0:(\d+)", log).group(1))
                 for door, what in (("_http._tcp", "web page"), ("_https._tcp", "web page over TLS"),
                                    ("_irc._tcp", "IRC"), ("_ircs._tcp", "IRC over TLS"), ("_telnet._tcp", "chat room"))}
        ports["_chatd._tcp"] = ports["_telnet._tcp"]
        browse = subprocess.run(in_namespace(client_ns, ["avahi-browse", "--all", "--resolve", "--terminate",
                                                         "--parsable", "--no-db-lookup"]),
                                capture_output=True, text=True, timeout=60, env={**os.environ, **avahi})
        resolved = {}
        for line in browse.stdout.splitlines():  # =;IFACE;IPv4;NAME;TYPE;DOMAIN;HOST;ADDRESS;PORT;TXT
            fields = line.split(";", 9)
            if fields[0] == "=" and fields[3] == "chatd\\032on\\032lab":
                resolved[fields[4]] = (fields[7], int(fields[8]), fields[9])
        assert {door: (address, port) for door, (address, port, _) in resolved.items()} == {
            door: (SERVER_ADDRESS, port) for door, port in ports.items()}, browse.stdout + browse.stderr
        assert resolved["_http._tcp"][2] == '"path=/"'
        assert f'"web={ports["_http._tcp"]}"' in resolved["_chatd._tcp"][2] and '"name=lab"' in resolved["_chatd._tcp"][2]

        address, port, _ = resolved["_http._tcp"]
        page = subprocess.run(in_namespace(client_ns, [sys.executable, "-c", (
            "import urllib.request, sys; "
            f"sys.stdout.write(urllib.request.urlopen('http://{address}:{port}/', timeout=10).read().decode())")]),
            capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
        assert "<title>" in page.stdout and "chatd" in page.stdout, page.stderr

        watching = Process(in_namespace(client_ns, ["avahi-browse", "--parsable", "--no-db-lookup", "_chatd._tcp"]),
                           tmp_path, avahi)
        watching.wait_for_line("+;")
    finally:
        assert chatd.stop() == 0
    assert watching is not None
    try:
        assert watching.wait_for_line("-;").split(";")[3] == "chatd\\032on\\032lab"
    finally:
        watching.stop()
