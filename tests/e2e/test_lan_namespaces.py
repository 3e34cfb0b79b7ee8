"""
A LAN in network namespaces the test creates and deletes itself: chatd in one
namespace announcing by multicast and broadcast, and in the other
`chatd-listen --discover` finds it and `nc` chats through the address found.

Addresses are test-only (198.18.88.0/24, the benchmarking range) and exist
only inside the two namespaces; each namespace routes everything, broadcast
included, over its end of the veth pair, so nothing reaches a real interface.
"""

import os
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
