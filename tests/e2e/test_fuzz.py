"""
Fuzzing a live server: hypothesis feeds arbitrary byte streams (telnet IAC
sequences, broken UTF-8, CR/LF/NUL mixtures, huge lines, escape sequences)
to the real twistd process, one connection per example, and checks that a
well-behaved client still gets answers, that no other user ever receives a
control character, and that the server's memory stays bounded.
"""

import re
import socket
import sys

import pytest
from tests.chatd_process import REPO, ChatdProcess, LineClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(REPO / "benchmarks"))
from stress import rss_kib  # noqa: E402

# Control characters other than the CR LF that ends each line.
CONTROL = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")

hostile = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.sampled_from([
            b"\xff", b"\xff\xff", b"\xff\xfa", b"\xff\xf0", b"\xff\xfb\x01", b"\xff\xfd\x01", b"\xff\xfa\x18" + b"x" * 5000,
            b"\r", b"\n", b"\r\n", b"\r\x00", b"\x00", b"\x08", b"\x7f",
            b"\x1b[2J", b"\x1b]0;title\x07", b"\x1b[31m", b"\x9b1m", "\u202e".encode(), "\u2028".encode(),
            b"\xc3", b"\xe5\xbc", b"\xf0\x9f", b"\xed\xa0\x80", "张三".encode("gbk"),
            b"/nick ", b"/msg watcher ", b"/me ", b"/charset gbk\n", b"/charset latin-1\n", b"b:", b"c:watcher:",
            b"x" * 5000, b"y" * 70000,
        ]),
    ),
    max_size=40,
).map(b"".join)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("fuzz")
    port_file = tmp_path / "port"
    server = ChatdProcess(
        "--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--echo-port", "0",
        "--rate", "10000", "--burst", "10000", "--login-timeout", "600",
        cwd=tmp_path,
    )
    server.wait_for_log("chat room listening on")
    port = int(port_file.read_text())
    watcher = LineClient(port).login("watcher")
    yield {"port": port, "watcher": watcher, "pid": server.process.pid, "rss_before": rss_kib(server.process.pid)}
    watcher.close()
    server.stop()


def check_screen(watcher):
    """Sync with /list, asserting every line the watcher got on the way is clean."""
    watcher.send_line("/list")
    while True:
        line = watcher.read_line()
        assert not CONTROL.search(line), line
        if line.startswith("*** ") and "online:" in line and "watcher" in line:
            return


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=hostile, log_in=st.booleans(), close_abruptly=st.booleans())
def test_hostile_bytes_never_break_the_server_nor_reach_another_screen(live, data, log_in, close_abruptly):
    """Whatever one connection sends, the others get only clean lines and the server keeps answering."""
    fuzzer = LineClient(live["port"])
    try:
        if log_in:
            fuzzer.send_line("fuzzer")
        fuzzer.send(data + b"\r\n")
    except OSError:
        pass  # the server may close a connection that sent HTTP-looking bytes: that is fine
    finally:
        if close_abruptly:
            fuzzer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        fuzzer.close()
    check_screen(live["watcher"])
    well_behaved = LineClient(live["port"])
    assert well_behaved.read_line().startswith("*** Welcome to chatd")
    well_behaved.close()


def test_memory_stayed_bounded(live):
    """After every example, the server's resident memory grew by less than 64 MiB."""
    check_screen(live["watcher"])
    now = rss_kib(live["pid"])
    assert now > 0 and live["rss_before"] > 0, "could not read the server's RSS"
    grown = now - live["rss_before"]
    assert grown < 64 * 1024, f"server RSS grew by {grown} KiB"
