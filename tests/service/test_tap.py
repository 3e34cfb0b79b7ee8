"""Command-line options and the service tree (chatd.service.tap)."""

import socket

import pytest
from twisted.application.service import IServiceCollection
from twisted.internet.task import Clock
from twisted.python import usage

from chatd.core.server import CROWD_SUMMARY_SECONDS, LOGIN_LINES_PER_PERIOD, ChatServer
from chatd.core.turn import Turn
from chatd.net.door import Settings
from chatd.service.tap import Options, _shut_down, makeService
from chatd.telnet.protocol import TelnetDoor
from tests.telnet.test_protocol import Client


def parse(*args):
    options = Options()
    options.parseOptions(list(args))
    return options


def test_defaults():
    """Every option's documented default."""
    options = parse()
    assert options["port"] == 8088
    assert options["interface"] == "0.0.0.0"
    assert options["fallback-ports"] == list(range(8089, 8099))
    assert options["port-file"] is None
    assert options["name"] == socket.gethostname()
    assert options["max-line"] == 4096
    assert options["charset"] == "utf-8"
    assert (options["no-echo"], options["echo-port"], options["echo-rate"]) == (False, 41234, 100)
    assert options["echo-fallback-ports"] == list(range(41237, 41247))  # never the announcement ports
    assert (options["multicast"], options["multicast-group"], options["multicast-port"]) == (False, "239.255.88.88", 41236)
    assert (options["multicast-ttl"], options["multicast-interface"]) == (1, None)
    assert (options["broadcast"], options["broadcast-address"], options["broadcast-port"]) == (False, "255.255.255.255", 41235)
    assert options["announce-interval"] == 5
    assert (options["max-clients"], options["max-per-ip"]) == (10000, 32)
    assert (options["login-timeout"], options["idle-timeout"]) == (60, 0)
    assert (options["rate"], options["burst"], options["flood-queue"], options["sendq"]) == (5, 20, 100, 1048576)
    assert (options["transcript"], options["transcript-max-bytes"], options["history"]) == (None, 10_000_000, 20)
    assert options["shutdown-grace"] == 5


def test_values_are_parsed_and_normalised():
    """Short forms work, IPv6 is accepted, charsets are canonicalised."""
    options = parse("-p", "9000", "-i", "::", "--fallback", "9100-9101", "--charset", "GBK", "--name", "lab 1", "--max-line", "64")
    assert (options["port"], options["interface"], options["fallback-ports"]) == (9000, "::", [9100, 9101])
    assert (options["charset"], options["name"], options["max-line"]) == ("gbk", "lab 1", 64)


def test_the_echo_never_falls_back_onto_an_announcement_port():
    """Neither the default announcement ports nor the ones given are echo candidates, nor the echo port."""
    options = parse("--echo-port", "41000", "--echo-fallback", "41000-41002,41235-41237", "--multicast-port", "41001")
    assert options["echo-fallback-ports"] == [41002, 41237]
    with pytest.raises(usage.UsageError) as refused:
        parse("--echo-port", "41236")
    assert str(refused.value) == "--echo-port: 41236 is a port of the announcements (41235, 41236); choose another"
    assert parse("--echo-port", "41236", "--no-echo")["no-echo"]  # no echo, no clash


def test_port_zero_has_no_fallback():
    """An ephemeral port cannot be taken, so there is nothing to fall back to."""
    assert parse("--port", "0")["fallback-ports"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "70000"], "--port: '70000' is not a port number (0-65535)"),
        (["--port", "http"], "--port: 'http' is not a port number (0-65535)"),
        (["--fallback", "9-3"], "--fallback: range 9-3 runs backwards"),
        (["--charset", "klingon"], "--charset: unknown charset: klingon (try utf-8, gbk, big5, latin-1)"),
        (["--charset", "utf-16"], "--charset: utf-16 cannot be used here: it does not write ASCII as ASCII, "
                                  "so line ends and commands would break (try utf-8, gbk, big5, latin-1)"),
        (["--interface", "localhost"], "--interface: 'localhost' is not an IPv4 or IPv6 address"),
        (["--max-line", "10"], "--max-line: '10' is not a number of bytes from 64 to 1048576"),
        (["--name", "\x1b[31m"], "--name: the name is empty"),
        (["--echo-port", "-1"], "--echo-port: '-1' is not a port number (0-65535)"),
        (["--echo-fallback", "5-1"], "--echo-fallback: range 5-1 runs backwards"),
        (["--echo-rate", "0"], "--echo-rate: '0' is not a positive number"),
        (["--multicast-group", "10.0.0.1"], "--multicast-group: '10.0.0.1' is not a multicast address (224.0.0.0-239.255.255.255)"),
        (["--multicast-port", "0"], "--multicast-port: 0 is not a port others can send to"),
        (["--multicast-ttl", "256"], "--multicast-ttl: '256' is not a TTL (0-255)"),
        (["--multicast-interface", "eth0"], "--multicast-interface: 'eth0' is not an IPv4 address"),
        (["--broadcast-address", "::1"], "--broadcast-address: '::1' is not an IPv4 address"),
        (["--max-clients", "0"], "--max-clients: '0' is not a whole number from 1"),
        (["--max-per-ip", "x"], "--max-per-ip: 'x' is not a whole number from 1"),
        (["--login-timeout", "0"], "--login-timeout: 0 s leaves no time at all"),
        (["--idle-timeout", "-5"], "--idle-timeout: '-5' is not a number of seconds (0 or more)"),
        (["--rate", "0"], "--rate: '0' is not a positive number"),
        (["--sendq", "10"], "--sendq: '10' is not a number of bytes from 1024 to 1073741824"),
        (["--history", "-1"], "--history: '-1' is not a number of messages from 0 to 10000"),
        (["--transcript-max-bytes", "5"], "--transcript-max-bytes: '5' is not a number of bytes from 1024"),
        (["--shutdown-grace", "soon"], "--shutdown-grace: 'soon' is not a number of seconds (0 or more)"),
        (["--announce-interval", "0"], "--announce-interval: '0' is not a number of seconds from 1 to 3600"),
    ],
)
def test_bad_values_name_the_option_and_the_problem(args, message):
    """A bad value is a UsageError whose message names the option."""
    with pytest.raises(usage.UsageError) as failure:
        parse(*args)
    assert str(failure.value) == message


def test_make_service_is_a_multiservice_with_the_chat_listener_first():
    """The chat room is the first child of a MultiService; the web page and echo are on by default, announcers are opt-in."""
    service = makeService(parse("--port", "0", "--interface", "127.0.0.1"))
    assert IServiceCollection.providedBy(service)
    assert [child.name for child in service] == ["chat", "irc", "irc-tls", "web", "web-tls", "echo", "store",
                                                 "certificate"]
    chat = service.getServiceNamed("chat")
    assert (chat.interface, chat.candidates) == ("127.0.0.1", [0])
    web = service.getServiceNamed("web")
    assert (web.interface, web.candidates) == ("127.0.0.1", list(range(8080, 8091)))


def test_announcers_join_as_siblings_and_echo_and_the_web_can_be_turned_off():
    """
    --multicast and --broadcast add announcers after the chat room; --no-echo, --no-web, --no-irc, --no-tls and
    --no-store remove those (and the certificate's watch, and the store's).
    """
    service = makeService(parse("--port", "0", "--no-echo", "--no-web", "--no-irc", "--no-tls", "--no-store",
                                "--multicast", "--broadcast"))
    assert [child.name for child in service] == ["chat", "multicast", "broadcast"]


def test_web_origins_must_be_origins():
    """--web-origin takes origins (or *) and refuses anything else with one line."""
    assert parse("--web-origin", "http://lab.example:8080, https://b.example/")["web-origin"] == [
        "http://lab.example:8080", "https://b.example"]
    assert parse("--web-origin", "*")["web-origin"] == ["*"]
    with pytest.raises(usage.UsageError) as failure:
        parse("--web-origin", "lab.example")
    assert str(failure.value) == "--web-origin: 'lab.example' is not an origin like http://lab.example:8080 (or *)"


def test_cluster_options_are_checked_and_a_password_is_never_repeated():
    """Bad --cluster URLs and names are one line each, and no line repeats the password."""
    assert parse("--cluster", "redis://:pw@10.0.0.5:6380/2")["cluster"].port == 6380
    for args, said in [
        (("--cluster", "http://:secret@x"), "--cluster: not a redis:// or rediss:// URL (redis://HOST:PORT/DB)"),
        (("--cluster", "redis://:secret@x/zero"), "--cluster: the database after the / must be a number"),
        (("--cluster", "redis://x", "--cluster-name", "a b"),
         "--cluster-name: 'a b' is not a cluster name (up to 64 letters, digits, - and _)"),
        (("--workers", "2"), "--workers: the workers share one chat through a cluster; give --cluster "
                             "redis://HOST:PORT/DB too"),
    ]:
        with pytest.raises(usage.UsageError) as failure:
            parse(*args)
        assert str(failure.value) == said and "secret" not in said


def test_with_a_cluster_the_bus_joins_the_services_before_the_chat_room():
    """
    With --cluster the bus is the first service, so it starts before the
    chat room listens; the cluster's store (its Redis) is a service too.
    """
    service = makeService(parse("--port", "0", "--interface", "127.0.0.1", "--cluster", "redis://127.0.0.1:1/0"))
    assert [child.name for child in service] == ["cluster", "chat", "irc", "irc-tls", "web", "web-tls", "echo",
                                                 "store", "certificate"]



def test_oper_password_comes_from_the_file(tmp_path):
    """The first line of the file is the password; an empty or missing file is a clear error."""
    secret = tmp_path / "oper"
    secret.write_text("s3cret\nignored\n")
    assert parse("--oper-password-file", str(secret))["oper-password"] == "s3cret"
    assert parse()["oper-password"] is None
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(usage.UsageError) as failure:
        parse("--oper-password-file", str(tmp_path / "empty"))
    assert str(failure.value) == f"--oper-password-file: {tmp_path / 'empty'} holds no password on its first line"
    with pytest.raises(usage.UsageError) as failure:
        parse("--oper-password-file", str(tmp_path / "missing"))
    assert str(failure.value) == f"--oper-password-file: cannot read {tmp_path / 'missing'}: No such file or directory"


def test_shutdown_logs_the_count_of_everyone_it_sent_away(log_lines):
    """At shutdown, the departures past the log's per-period lines are counted in the log, and no summary is left waiting."""
    clock = Clock()
    server = ChatServer("lab", clock, turn=Turn(clock))
    door = TelnetDoor(server, Settings("lab"), clock)
    for number in range(LOGIN_LINES_PER_PERIOD + 2):
        Client(door, 40000 + number, f"127.0.0.{number % 250 + 1}").send(b"u%d\r\n" % number)
    clock.advance(CROWD_SUMMARY_SECONDS)  # the logins' summary
    _shut_down(server, [door], 5, None)
    assert log_lines[-1] == "2 more users left (0 online)"
    assert [call for call in clock.getDelayedCalls() if call.func.__qualname__ == "Crowd._summarise"] == []
