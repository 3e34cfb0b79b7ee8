"""Shared fixtures: captured chatd log lines, free loopback ports."""

import os
import random
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from twisted.logger import formatEvent, globalLogPublisher

# chatd keeps its self-signed TLS certificate and its store in
# $XDG_STATE_HOME/chatd: for the tests (and every chatd they start), a
# directory of their own, never the user's; and one for each test (below),
# so that no test sees another's history.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="chatd-tests-state-")


@pytest.fixture(autouse=True)
def state_home(tmp_path_factory, monkeypatch):
    """Each test's own $XDG_STATE_HOME: its chatds' certificate and store, shared by its restarts only."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def log_lines():
    """Every log line chatd emits during the test, formatted as an operator sees it."""
    lines = []

    def observe(event):
        if event.get("log_namespace", "").startswith("chatd"):
            lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


@contextmanager
def occupied(host="127.0.0.1", port=0):
    """A plain socket of 'another program' listening on host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as other:
        other.bind((host, port))
        other.listen(8)
        yield other, other.getsockname()[1]


def free_port_run(count, host="127.0.0.1"):
    """
    The first of `count` consecutive ports that were free a moment ago.

    Tried below the kernel's ephemeral range first: its ports come and go
    with every outgoing connection (thousands during a benchmark), so runs
    of free ones are rarer there.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for attempt in range(200):
        if attempt < 100 and low - count > 10_000:
            first = random.randrange(10_000, low - count)
        else:
            with socket.socket() as probe:
                probe.bind((host, 0))
                first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        held = []
        try:
            for port in range(first, first + count):
                s = socket.socket()
                held.append(s)
                # As Twisted's listening sockets do: a port whose old
                # connections are in TIME_WAIT (after a benchmark) is free.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, port))
            return first
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no run of free ports found")


@pytest.fixture
def redis(tmp_path):
    """A real redis-server on a free loopback port (tests/redis_server.py); stopped after the test."""
    from tests.redis_server import RedisServer

    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    yield server
    server.stop()
