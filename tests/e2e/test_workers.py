"""
End to end: `twistd -n chatd --workers 2 --cluster redis://...`, the real
processes on one real redis-server: both workers accept on the same ports,
they are one chat, one killed is started again, and SIGTERM stops all.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
from tests.chatd_process import ChatdProcess, LineClient

from chatd.bus.redis import HEARTBEAT_SECONDS

USERS = 12


@pytest.fixture
def workers(tmp_path, redis):
    port_file = tmp_path / "port"
    parent = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--no-echo",
                          "--cluster", redis.url, "--cluster-name", "w", "--workers", "2", cwd=tmp_path)
    try:
        pids = {}
        for _ in range(2):
            number, pid = re.search(r"worker (\d) started \(pid (\d+)\)", parent.wait_for_log("started (pid")).groups()
            pids[int(number)] = int(pid)
        assert parent.wait_for_log(" (2 workers)").split("] ", 1)[1].startswith("chat room listening on 127.0.0.1:")
        parent.port = int(port_file.read_text())
        parent.pids = pids
        yield parent
    finally:
        if parent.process.poll() is None:
            parent.stop()


def users_by_node(redis):
    """{node: [nick, ...]} from each node's state in Redis."""
    nodes = re.findall(rb"\$\d+\r\n([^\r]+)\r\n", redis.command("SMEMBERS", "chatd:w:nodes"))
    result = {}
    for node in nodes:
        reply = redis.command("HGET", f"chatd:w:node:{node.decode()}", "state")
        state = json.loads(reply.split(b"\r\n", 1)[1].rsplit(b"\r\n", 1)[0])
        result[node.decode()] = [nick for nick, _ in state["users"]]
    return result


def online(client, count):
    deadline = time.monotonic() + 10
    while True:
        client.send_line("/names")
        while not re.match(r"\*\*\* \d+ users? online: ", line := client.read_line()):
            pass
        if line.startswith(f"*** {count} users online"):
            return line
        assert time.monotonic() < deadline, line


def test_two_workers_share_the_ports_and_are_one_chat_and_one_killed_comes_back(workers, redis):
    """Two workers accept on one port as one chat, and a worker killed is started again."""
    clients = [LineClient(workers.port).login(f"user{number}") for number in range(USERS)]
    try:
        online(clients[0], USERS)
        deadline = time.monotonic() + 3 * HEARTBEAT_SECONDS
        while len(spread := users_by_node(redis)) < 2 or sum(map(len, spread.values())) < USERS:
            assert time.monotonic() < deadline, spread  # each node's state is written at its next heartbeat
            time.sleep(0.2)
        assert all(spread.values()), f"the kernel gave every worker some of {USERS} connections: {spread}"

        clients[0].send_line("hello, both workers")
        for client in clients[1:]:
            while client.read_line() != "<user0> hello, both workers":
                pass

        os.kill(workers.pids[1], signal.SIGKILL)
        assert re.search(r"worker 1 ended \(.*\); starting it again in 1 s", workers.wait_for_log("worker 1 ended"))
        assert "worker 1 started (pid" in workers.wait_for_log("worker 1 started")
        worker_one = next(node for node in spread if node.split("-")[-2] == str(workers.pids[1]))
        lost = set(spread[worker_one])
        survivors = [client for client, number in zip(clients, range(USERS)) if f"user{number}" not in lost]
        watcher = survivors[0]
        gone = set()
        while gone != lost:
            found = re.fullmatch(r"\*\*\* (user\d+) has left \(Server lost\)", watcher.read_line())
            if found:
                gone.add(found.group(1))
        # Their nicknames are free (each node frees them when it finds the presence gone, within a
        # heartbeat of the others), and the port is served all along.
        newcomer = LineClient(workers.port)
        newcomer.read_lines(2)
        deadline = time.monotonic() + 2 * HEARTBEAT_SECONDS
        while True:
            newcomer.send_line(sorted(lost)[0])
            answer = newcomer.read_line()
            if answer.startswith("*** Hello"):
                break
            assert answer.startswith("*** Error: nickname is taken") and time.monotonic() < deadline, answer
            assert newcomer.read_line() == "*** Choose a nickname:"
            time.sleep(0.2)
        online(newcomer, len(survivors) + 1)
        newcomer.send_line("back again")
        while watcher.read_line() != f"<{sorted(lost)[0]}> back again":
            pass
        clients.append(newcomer)
    finally:
        for client in clients:
            client.close()
    assert workers.stop() == 0
    assert "worker" not in " ".join(workers.lines["stderr"])
    for pid in workers.pids.values():
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()


def test_the_workers_stop_when_their_parent_is_killed(workers):
    """kill -9 of the parent: every worker stops by itself."""
    workers.process.kill()  # SIGKILL: the parent says nothing to anyone
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") and "zombie" not in open(f"/proc/{pid}/status").read().lower()
              for pid in workers.pids.values()):
        assert time.monotonic() < deadline, "a worker outlived its parent"
        time.sleep(0.1)
    workers.finish()  # the workers' output comes through the parent's, until the last of them ends
    assert sum("the parent process is gone; stopping" in line for line in workers.log) == 2


def test_workers_need_a_cluster(tmp_path):
    """--workers without --cluster is one line on stderr and exit status 2."""
    lone = ChatdProcess("--port", "0", "--workers", "2", cwd=tmp_path)
    assert lone.finish() == 2
    assert lone.lines["stderr"] == [
        "chatd: --workers: the workers share one chat through a cluster; give --cluster redis://HOST:PORT/DB too "
        "(twistd chatd --help lists the options)"]
