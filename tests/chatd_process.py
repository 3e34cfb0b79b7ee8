"""Helpers for end-to-end tests: the real twistd process and line-based clients."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TWISTD = Path(sys.executable).with_name("twistd")
TIMEOUT_SECONDS = 10


def twistd_command(*chatd_args: str) -> list[str]:
    return [str(TWISTD), "-n", "--pidfile=", "chatd", *chatd_args]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ChatdProcess:
    """`twistd -n chatd ...`, started and stopped by the test."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.process = subprocess.Popen(
            twistd_command(*args), cwd=cwd, env=environment(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.log: list[str] = []
        self._pending = b""

    def wait_for_log(self, text: str, timeout: float = TIMEOUT_SECONDS) -> str:
        """Read the process's log until a line containing `text` appears; return it."""
        deadline = time.monotonic() + timeout
        for line in self.log:
            if text in line:
                return line
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], deadline - time.monotonic())
            if not ready:
                break
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                break
            self._pending += chunk
            *complete, self._pending = self._pending.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                self.log.append(line)
                if text in line:
                    return line
        raise AssertionError(f"no log line with {text!r}; log so far:\n" + "\n".join(self.log))

    def stop(self) -> None:
        """Stop the server, which must still be running (it did not die on its own)."""
        died = self.process.poll()
        if died is None:
            self.process.terminate()
        try:
            self.process.wait(TIMEOUT_SECONDS)
            assert died is None, f"chatd had exited with status {died}; log:\n" + "\n".join(self.log)
        finally:
            self.process.stdout.close()
            self.process.stderr.close()


class LineClient:
    """A raw TCP client that reads CR LF lines, as nc would."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT_SECONDS)
        self._buffer = b""
        self.charset = "utf-8"

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode(self.charset) if isinstance(data, str) else data)

    def send_line(self, text: str) -> None:
        self.send(text + "\r\n")

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed; unread: {self._buffer!r}")
        self._buffer += chunk

    def read_until(self, end: bytes) -> bytes:
        """Everything up to and including the next `end`."""
        while end not in self._buffer:
            self._receive()
        data, self._buffer = self._buffer.split(end, 1)
        return data + end

    def read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._receive()
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def read_raw_line(self) -> bytes:
        """The next line, CR LF included."""
        return self.read_until(b"\r\n")

    def read_line(self) -> str:
        return self.read_raw_line()[:-2].decode(self.charset)

    def read_lines(self, count: int) -> list[str]:
        return [self.read_line() for _ in range(count)]

    def read_until_closed(self) -> bytes:
        data, self._buffer = self._buffer, b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk

    def login(self, nick: str) -> LineClient:
        self.read_lines(2)
        self.send_line(nick)
        assert self.read_line() == f"*** Hello {nick}! Type /help for commands."
        return self

    def close(self) -> None:
        self.sock.close()
