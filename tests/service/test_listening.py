"""Port fallback, the self-check and the port file, on real loopback sockets (chatd.service.listening)."""

import os
import socket
import struct
from pathlib import Path

import pytest
import pytest_twisted
from tests.conftest import free_port_run, occupied
from twisted.internet import reactor
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import globalLogPublisher

from chatd.service.listening import (
    LISTEN_BACKLOG,
    FallbackListener,
    FallbackSpecError,
    ListenError,
    TCPBinding,
    fallback_ports,
    format_ports,
    listen_with_fallback,
)


class Factory(ServerFactory):
    protocol = Protocol


def test_the_chat_port_queues_a_thousand_connections_before_they_are_accepted():
    """The listening socket's backlog (Linux reports it in tcp_info) is ours, not Twisted's 50."""
    listening = TCPBinding(reactor.listenTCP, Factory()).listen(0, "127.0.0.1")
    try:
        info = listening.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    finally:
        listening.stopListening()
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    backlog = struct.unpack_from("I", info, 28)[0]  # tcpi_sacked: a listener's maximum accept queue
    assert backlog == min(LISTEN_BACKLOG, somaxconn)


@pytest.mark.parametrize(
    "spec, port, expected",
    [
        ("10", 8088, list(range(8089, 8099))),
        ("0", 8088, []),
        ("3", 65534, [65535]),
        ("8089-8091,9000", 8088, [8089, 8090, 8091, 9000]),
        ("9000,", 8088, [9000]),
        ("9000-9000", 8088, [9000]),
        ("9000, 8089-8090, 9000", 8088, [9000, 8089, 8090]),
        ("9000,", 9000, []),
        ("8999-9001", 9000, [8999, 9001]),
    ],
)
def test_fallback_spec_is_a_count_or_ports_and_ranges_in_order(spec, port, expected):
    """A count tries the next N ports; a list is tried in the order given, without repeats or the first port."""
    assert fallback_ports(spec, port) == expected


def test_fallback_steps_over_the_ports_to_avoid():
    """The ports chatd uses for something else are never tried; a count still gives that many ports."""
    assert fallback_ports("4", 41234, avoid={41235, 41236}) == [41237, 41238, 41239, 41240]
    assert fallback_ports("41235-41238", 41234, avoid={41235, 41236}) == [41237, 41238]


@pytest.mark.parametrize(
    "spec, reason",
    [
        ("9-3", "range 9-3 runs backwards"),
        ("abc", "'abc' is not a port or a range of ports (1-65535)"),
        ("8089-70000", "'8089-70000' is not a port or a range of ports (1-65535)"),
        (",", "',' names no ports"),
    ],
)
def test_bad_fallback_specs_say_why(spec, reason):
    """Each malformed spec has a reason naming the bad part."""
    with pytest.raises(FallbackSpecError) as failure:
        fallback_ports(spec, 8088)
    assert str(failure.value) == reason


def test_format_ports_collapses_runs():
    """Every port is named; consecutive ones as a range."""
    assert format_ports([8088, 8089, 8090, 9000, 9002]) == "8088-8090, 9000, 9002"


@pytest_twisted.inlineCallbacks
def test_a_free_port_is_used_as_is(log_lines):
    """No fallback when the first port is free; one log line says where."""
    port = free_port_run(1)
    result = listen_with_fallback(TCPBinding(reactor.listenTCP, Factory()), "127.0.0.1", [port, port + 1])
    listening = result.port
    try:
        assert listening.getHost().port == port
        assert log_lines == []
        assert result.describe("chat room") == f"chat room listening on 127.0.0.1:{port}"
    finally:
        yield listening.stopListening()


@pytest.mark.parametrize(
    "other_host, our_interface",
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("127.0.0.1", "0.0.0.0")],
    ids=["same-interface", "other-holds-wildcard", "we-bind-wildcard"],
)
@pytest_twisted.inlineCallbacks
def test_a_taken_port_falls_back_in_order_with_one_line_per_attempt(log_lines, other_host, our_interface):
    """Two taken candidates are skipped in order, each logged, and the result says which were taken."""
    first = free_port_run(3)
    with occupied(other_host, first), occupied(other_host, first + 1):
        result = listen_with_fallback(TCPBinding(reactor.listenTCP, Factory()), our_interface, [first, first + 1, first + 2])
        listening = result.port
        try:
            assert listening.getHost().port == first + 2
            assert log_lines == [
                f"port {first} on {our_interface} is in use; trying {first + 1}",
                f"port {first + 1} on {our_interface} is in use; trying {first + 2}",
            ]
            assert result.describe("chat room") == (
                f"chat room listening on {our_interface}:{first + 2} ({first}-{first + 1} were taken)"
            )
        finally:
            yield listening.stopListening()


@pytest_twisted.inlineCallbacks
def test_the_same_port_on_another_interface_is_not_taken(log_lines):
    """Another program on 127.0.0.2:P does not stop chatd using 127.0.0.1:P."""
    port = free_port_run(1)
    with occupied("127.0.0.2", port):
        listening = listen_with_fallback(TCPBinding(reactor.listenTCP, Factory()), "127.0.0.1", [port, port + 1]).port
        try:
            assert listening.getHost().port == port
        finally:
            yield listening.stopListening()


def test_every_candidate_taken_is_one_error_naming_interface_and_ports(log_lines):
    """When nothing is free: ListenError with the interface and every port tried."""
    first = free_port_run(2)
    with occupied("127.0.0.1", first), occupied("127.0.0.1", first + 1):
        with pytest.raises(ListenError) as failure:
            listen_with_fallback(TCPBinding(reactor.listenTCP, Factory()), "127.0.0.1", [first, first + 1])
    assert str(failure.value) == f"cannot listen on 127.0.0.1: every port tried is taken ({first}-{first + 1})"
    assert log_lines[-1] == f"port {first + 1} on 127.0.0.1 is in use"


def test_an_address_not_on_this_machine_fails_at_once():
    """A bind error other than 'in use' is not retried on other ports."""
    with pytest.raises(ListenError) as failure:
        listen_with_fallback(TCPBinding(reactor.listenTCP, Factory()), "192.0.2.1", [8088, 8089])
    assert str(failure.value) == "cannot listen on 192.0.2.1:8088: Cannot assign requested address"


@pytest_twisted.inlineCallbacks
def test_a_port_answered_by_another_program_counts_as_taken(log_lines):
    """
    Where a bind succeeds although another program answers on the port (other
    platforms, SO_REUSEPORT), the self-check notices and chatd moves on.

    Simulated with a listen function that "binds" port P but really listens
    elsewhere, while another program holds P.
    """
    first = free_port_run(2)
    decoys = []

    def deceptive_listen(port, factory, backlog, interface):
        if port == first:
            decoy = reactor.listenTCP(0, factory, backlog=backlog, interface=interface)
            decoys.append(decoy)
            decoy.getHost = lambda: type(decoy.__class__.getHost(decoy))("TCP", interface, first)
            return decoy
        return reactor.listenTCP(port, factory, backlog=backlog, interface=interface)

    with occupied("127.0.0.1", first):
        listening = listen_with_fallback(TCPBinding(deceptive_listen, Factory()), "127.0.0.1", [first, first + 1], probe_timeout=0.3).port
    try:
        assert listening.getHost().port == first + 1
        assert log_lines[0] == f"port {first} on 127.0.0.1 is answered by another program; trying {first + 1}"
        assert decoys[0].disconnecting  # the decoy is being closed, not leaked
    finally:
        yield listening.stopListening()


@pytest_twisted.inlineCallbacks
def test_the_self_check_never_reaches_the_real_factory():
    """The check's own connection is closed before the chat factory sees it."""
    built = []

    class Recording(ServerFactory):
        def buildProtocol(self, addr):
            built.append(addr)
            return Protocol()

    listening = listen_with_fallback(TCPBinding(reactor.listenTCP, Recording()), "127.0.0.1", [0]).port
    yield listening.stopListening()
    assert built == []


@pytest_twisted.inlineCallbacks
def test_listener_service_writes_the_port_file_before_saying_it_listens(tmp_path, log_lines):
    """Whoever waits for the 'listening' line finds the port file; a clean stop removes it."""
    port_file = tmp_path / "chatd.port"
    seen_when_logged = []

    def look(event):
        if "listening on" in str(event.get("line", "")):
            seen_when_logged.append(port_file.read_text() if port_file.exists() else None)

    globalLogPublisher.addObserver(look)
    try:
        service = FallbackListener(TCPBinding(reactor.listenTCP, Factory()), "127.0.0.1", [0], str(port_file))
        service.startService()
    finally:
        globalLogPublisher.removeObserver(look)
    assert port_file.read_text() == f"{service.port}\n"
    assert seen_when_logged == [f"{service.port}\n"]
    assert log_lines == [f"chat room listening on 127.0.0.1:{service.port}"]
    assert os.listdir(tmp_path) == ["chatd.port"]  # no temporary file left behind
    yield service.stopService()
    assert not port_file.exists()


def test_listener_service_exits_with_one_line_when_nothing_is_free(log_lines):
    """Under twistd, SystemExit(1) ends the process; the log has the one line saying why."""
    first = free_port_run(1)
    with occupied("127.0.0.1", first):
        service = FallbackListener(TCPBinding(reactor.listenTCP, Factory()), "127.0.0.1", [first])
        with pytest.raises(SystemExit) as exit:
            service.privilegedStartService()
    assert exit.value.code == 1
    assert log_lines[-1] == f"cannot listen on 127.0.0.1: every port tried is taken ({first})"
