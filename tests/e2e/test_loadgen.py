"""
Small runs of the benchmark load generators against chatd, as correctness
tests (not timing tests): the C one the benchmarks use, and the Python one
they fall back to without a C compiler.
"""

import sys

import pytest
from tests.chatd_process import REPO, ChatdProcess

sys.path.insert(0, str(REPO / "benchmarks"))

import loadgen  # noqa: E402
from run import CHATD_UNTHROTTLED  # noqa: E402

from stress import rss_kib  # noqa: E402


@pytest.fixture
def chatd_port(tmp_path):
    port_file = tmp_path / "port"
    server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file),
                          *CHATD_UNTHROTTLED, cwd=tmp_path)
    try:
        server.wait_for_log("chat room listening on")
        server.irc_port = int(server.wait_for_log("IRC listening on").rsplit(":", 1)[1])
        server.web_port = int(server.wait_for_log("web page listening on").rsplit(":", 1)[1])
        yield int(port_file.read_text()), server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def c_generator(tmp_path_factory):
    binary = loadgen.compile_c(REPO / "benchmarks" / "c" / "loadgen.c", tmp_path_factory.mktemp("build"))
    assert binary is not None, "no C compiler: .ci/run installs gcc"
    return loadgen.CLoadGenerator(binary)


@pytest.mark.parametrize("generator", ["python", "c"])
def test_fan_out_delivers_every_line_once_in_order(chatd_port, generator, request):
    """12 clients, 4 senders x 30 lines, in 2 processes: every receiver gets every other sender's lines once, in order."""
    port, server = chatd_port
    run = loadgen if generator == "python" else request.getfixturevalue("c_generator")
    for attempt in ("first", "again, when joining shows the room's history of the first"):
        result = run.fan_out(port, clients=12, senders=4, lines=30, size=64, timeout=60, processes=2)
        assert result.expected == 4 * 30 * 11
        assert (result.deliveries, result.lost, result.duplicated, result.reordered) == (result.expected, 0, 0, 0), attempt
        assert len(result.latencies_ms) == 4 * 11 * 4  # every 8th line of 30: 0, 8, 16, 24
        for _ in range(12):  # all of them gone, so the nicknames are free again
            server.wait_for_log(" left (")


def test_the_c_generator_paces_lines_at_the_rate_asked(chatd_port, c_generator):
    """At 20 lines/s, 10 lines take at least nine intervals of 50 ms, and all arrive."""
    port, _ = chatd_port
    result = c_generator.fan_out(port, clients=3, senders=1, lines=10, size=64, rate=20.0, timeout=60)
    assert (result.deliveries, result.lost, result.reordered) == (20, 0, 0)
    assert result.seconds >= 0.45


@pytest.mark.parametrize("door", ["telnet", "irc", "web"])
def test_the_c_generator_holds_idle_clients_logged_in(chatd_port, c_generator, door):
    """The memory scenario, on every door: every client is logged in before the server's memory is read."""
    port, server = chatd_port
    readings = []
    door_port = {"irc": server.irc_port, "web": server.web_port}.get(door, port)
    c_generator.idle_connections(door_port, 50, lambda: readings.append(rss_kib(server.process.pid)) or readings[-1],
                                 door)
    assert len(readings) == 2
    assert server.wait_for_log("c49 joined (50 online)")


def test_the_c_generator_checks_every_line_over_websocket_too(chatd_port, c_generator):
    """12 web clients, 4 senders x 30 lines, in 2 processes; then the same again, with the first run's history."""
    _, server = chatd_port
    for attempt in ("first", "again"):
        result = c_generator.fan_out(server.web_port, clients=12, senders=4, lines=30, size=64, timeout=60,
                                     processes=2, door="web")
        assert result.expected == 4 * 30 * 11
        assert (result.deliveries, result.lost, result.duplicated, result.reordered) == (result.expected, 0, 0, 0), attempt
        assert len(result.latencies_ms) == 4 * 11 * 4
        for _ in range(12):
            server.wait_for_log(" left (")


def test_the_c_generator_checks_every_line_over_irc_too(chatd_port, c_generator):
    """12 IRC clients, 4 senders x 30 lines, in 2 processes: every PRIVMSG once, in order."""
    _, server = chatd_port
    result = c_generator.fan_out(server.irc_port, clients=12, senders=4, lines=30, size=64, timeout=60, processes=2,
                                 door="irc")
    assert result.expected == 4 * 30 * 11
    assert (result.deliveries, result.lost, result.duplicated, result.reordered) == (result.expected, 0, 0, 0)
    assert len(result.latencies_ms) == 4 * 11 * 4


@pytest.mark.parametrize("door", ["telnet", "irc", "web"])
def test_the_c_generator_checks_every_line_over_tls_on_every_door(chatd_port, c_generator, door):
    """
    The TLS scenarios' clients (LOADGEN_TLS): 12 clients over TLS on a
    door's plain port get every line once, in order; 50 log in over TLS.
    """
    port, server = chatd_port
    target = {"telnet": port, "irc": server.irc_port, "web": server.web_port}[door]
    result = c_generator.fan_out(target, clients=12, senders=4, lines=30, size=64, timeout=60, processes=2, door=door,
                                 tls=True)
    assert result.expected == 4 * 30 * 11
    assert (result.deliveries, result.lost, result.duplicated, result.reordered) == (result.expected, 0, 0, 0)
    if door != "web":  # the storm's clients are telnet or IRC ones; it raises unless each got its welcome
        assert c_generator.log_in_seconds(target, 50, door, tls=True) > 0


def test_the_c_generator_can_wait_for_the_greeting_as_people_do(chatd_port, c_generator):
    """
    Telnet clients that read the greeting before they send their nickname
    log in; chatd greets a silent client only after its greeting wait, so
    such a storm cannot take less than that wait.
    """
    from chatd.telnet.protocol import GREETING_WAIT_SECONDS

    port, _ = chatd_port
    assert c_generator.log_in_seconds(port, 30, greeting_first=True) >= GREETING_WAIT_SECONDS
