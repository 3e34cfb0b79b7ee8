"""
History that survives a restart, against the real `twistd -n chatd` and
its SQLite store in the test's state directory: stopped, or killed with
-9, chatd comes back with its channels' topics and their recent lines.
"""

from __future__ import annotations

import signal
import sqlite3
import time

from tests.chatd_process import TIMEOUT_SECONDS, ChatdProcess, LineClient


def start(tmp_path, *args):
    process = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--name", "lab", "--no-echo",
                           "--port-file", str(tmp_path / "port"), "--state-dir", str(tmp_path / "state"), *args,
                           cwd=tmp_path)
    process.wait_for_log("chat room listening on")
    return process, int((tmp_path / "port").read_text())


def talk(port):
    """alice says two lines in #lobby, makes #lab with a topic and says a line there, then leaves."""
    alice = LineClient(port).login("alice")
    alice.send_line("good morning")
    alice.send_line("/me waves")
    alice.send_line("/join #lab")
    alice.read_until(b"*** You joined #lab")
    alice.send_line("/topic robots on Friday")
    alice.read_until(b"set the topic of #lab: robots on Friday\r\n")
    alice.send_line("bring your soldering irons")
    alice.send_line("/topic")  # answered after the line before was said (and handed to the store)
    alice.read_until(b"robots on Friday")
    return alice


def check_memory(port):
    """bob, after the restart, is shown the lobby's lines, and #lab's topic and line."""
    bob = LineClient(port)
    bob.read_lines(2)
    bob.send_line("bob")
    seen = bob.read_until(b"*** End of recent messages\r\n").decode()
    assert "<alice> good morning" in seen and "* alice waves" in seen
    bob.send_line("/join #lab")
    joined = bob.read_until(b"bring your soldering irons\r\n").decode()
    assert "*** Topic of #lab: robots on Friday" in joined
    bob.close()


def test_channels_topics_and_history_survive_a_restart(tmp_path):
    """Stopped with SIGTERM and started again, chatd shows what was said and the topic that was set."""
    server, port = start(tmp_path)
    try:
        talk(port).close()
    finally:
        assert server.stop() == 0
    server, port = start(tmp_path)
    try:
        kept = f"channels, topics and history are kept in {tmp_path / 'state' / 'chatd.sqlite3'} (2 channel(s) from before)"
        assert any(line.endswith(kept) for line in server.log)  # logged before the port, which start() waited for
        check_memory(port)
    finally:
        server.stop()


def test_what_was_said_more_than_a_second_before_kill_9_survives(tmp_path):
    """
    Killed with -9 (no shutdown at all) once the lines are in the store's
    file (read there with SQLite itself), chatd comes back with them.
    """
    server, port = start(tmp_path)
    try:
        alice = talk(port)
        deadline = time.monotonic() + TIMEOUT_SECONDS
        with sqlite3.connect(tmp_path / "state" / "chatd.sqlite3") as kept:
            while kept.execute("SELECT count(*) FROM events WHERE event LIKE '%soldering%'").fetchone()[0] == 0:
                assert time.monotonic() < deadline, "the line never reached the store's file"
                time.sleep(0.05)  # polling the file: chatd says nothing when a write is done
    finally:
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(TIMEOUT_SECONDS)
    alice.close()
    server, port = start(tmp_path)
    try:
        check_memory(port)
    finally:
        server.stop()
