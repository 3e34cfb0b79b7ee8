"""Helpers for end-to-end tests: the real twistd process and line-based clients."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Ping, RejectConnection, Request, TextMessage

REPO = Path(__file__).resolve().parent.parent
TWISTD = Path(sys.executable).with_name("twistd")
TIMEOUT_SECONDS = 10


def twistd_command(*chatd_args: str) -> list[str]:
    """
    twistd running chatd; its web page and IRC ports, plain and TLS, on
    free ports unless the test says otherwise (8080, 6667, 8443 and 6697
    may be taken).
    """
    if not any(arg.startswith(("--web-port", "--no-web")) for arg in chatd_args):
        chatd_args = (*chatd_args, "--web-port", "0")
    if not any(arg.startswith(("--irc-port", "--no-irc")) for arg in chatd_args):
        chatd_args = (*chatd_args, "--irc-port", "0")
    for tls_port in ("--web-tls-port", "--irc-tls-port"):
        if not any(arg.startswith((tls_port, "--no-tls")) for arg in chatd_args):
            chatd_args = (*chatd_args, tls_port, "0")
    return [str(TWISTD), "-n", "--pidfile=", "chatd", *chatd_args]


def trusting(certificate: Path | None = None, alpn: list[str] | None = None) -> ssl.SSLContext:
    """
    A TLS client context that trusts `certificate` (a CA's, or chatd's own
    self-signed one: its fingerprint is checked by the test instead), or
    anything when None; offering `alpn` if given.
    """
    context = ssl.create_default_context(cafile=None if certificate is None else str(certificate))
    if certificate is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def peer_fingerprint(sock: ssl.SSLSocket) -> str:
    """The SHA-256 fingerprint of the certificate the server showed, as chatd logs it."""
    certificate = sock.getpeercert(binary_form=True)
    assert certificate is not None
    return hashlib.sha256(certificate).digest().hex(":").upper()


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def listen_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "chatd.lan.listen", *args]


class Process:
    """A child process the test started, whose output lines it can wait for."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        """Start `command` in `cwd`, with chatd on its Python path and `env` added to the environment."""
        self.process = subprocess.Popen(
            command, cwd=cwd, env={**environment(), **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._seen = {"stdout": 0, "stderr": 0}
        self._pending = {"stdout": b"", "stderr": b""}

    @property
    def log(self) -> list[str]:
        return self.lines["stdout"]

    def wait_for_line(self, text: str, stream: str = "stdout", timeout: float = TIMEOUT_SECONDS) -> str:
        """
        The next line on `stream` that contains `text`, reading as needed.
        Lines before it are passed over (and stay in self.lines).
        """
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines[stream]
            while self._seen[stream] < len(lines):
                line = lines[self._seen[stream]]
                self._seen[stream] += 1
                if text in line:
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(
                    f"no {stream} line with {text!r}; so far:\n" + "\n".join(self.lines["stdout"] + self.lines["stderr"])
                )

    def wait_for_log(self, text: str, timeout: float = TIMEOUT_SECONDS) -> str:
        return self.wait_for_line(text, "stdout", timeout)

    def _read(self, timeout: float) -> bool:
        """Read what is ready on either pipe; False at end of output or timeout."""
        pipes = {self.process.stdout: "stdout", self.process.stderr: "stderr"}
        ready, _, _ = select.select([pipe for pipe in pipes if not pipe.closed], [], [], timeout)
        got = False
        for pipe in ready:
            name = pipes[pipe]
            chunk = os.read(pipe.fileno(), 65536)
            if chunk:
                got = True
                self._pending[name] += chunk
                *complete, self._pending[name] = self._pending[name].split(b"\n")
                self.lines[name] += [raw.decode(errors="replace") for raw in complete]
        return got

    def finish(self, timeout: float = TIMEOUT_SECONDS) -> int:
        """Wait for the process to end by itself; return its status, with all output read."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None or self._read(0):
            if time.monotonic() > deadline:
                raise AssertionError("process did not finish; output:\n" + "\n".join(self.lines["stdout"] + self.lines["stderr"]))
            self._read(0.1)
        while self._read(0):
            pass
        self._close()
        return self.process.returncode

    def stop(self, signal_number: int = signal.SIGTERM) -> int:
        """Stop the process, which must still be running (it did not die on its own); return its status."""
        died = self.process.poll()
        if died is None:
            self.process.send_signal(signal_number)
        try:
            status = self.process.wait(TIMEOUT_SECONDS)
            while self._read(0):
                pass
            assert died is None, f"process had exited with status {died}; output:\n" + "\n".join(self.lines["stdout"] + self.lines["stderr"])
        finally:
            self._close()
        return status

    def _close(self) -> None:
        for pipe in (self.process.stdout, self.process.stderr):
            if not pipe.closed:
                pipe.close()


class ChatdProcess(Process):
    """`twistd -n chatd ...`, started and stopped by the test."""

    def __init__(self, *args: str, cwd: Path) -> None:
        super().__init__(twistd_command(*args), cwd)


class LineClient:
    """A raw TCP client that reads CR LF lines, as nc would; over TLS, as `openssl s_client` would, given a context."""

    def __init__(self, port: int, host: str = "127.0.0.1", source: str | None = None,
                 tls: ssl.SSLContext | None = None, server_hostname: str | None = None) -> None:
        # Loopback connections come from 127.0.0.1 whatever the destination,
        # unless the source is chosen: tests that need two addresses choose it.
        source_address = (source, 0) if source else None
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT_SECONDS, source_address=source_address)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=server_hostname)
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


class WebClient:
    """
    A WebSocket client of chatd's web port (a browser's side of the chat
    page), on a blocking socket, with wsproto: the WebSocket library under
    twisted.web.websocket, used here from the client's end.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", origin: str | None = None, path: str = "/chat",
                 tls: ssl.SSLContext | None = None) -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT_SECONDS)
        if tls is not None:  # wss://
            self.sock = tls.wrap_socket(self.sock)
        self.ws = WSConnection(ConnectionType.CLIENT)
        headers = [] if origin is None else [("Origin", origin)]
        self.sock.sendall(self.ws.send(Request(host=f"{host}:{port}", target=path, extra_headers=headers)))
        self._events: list[object] = []
        self._text = ""
        self.closed_with: int | None = None  # the server's close code, once it closed
        self.rejected: int | None = None  # the HTTP status, if the handshake was refused
        self._handshake()

    def _handshake(self) -> None:
        while True:
            events = self._more_events()
            for index, event in enumerate(events):
                if isinstance(event, AcceptConnection):
                    self._events.extend(events[index + 1:])  # the first messages may come with the handshake
                    return
                if isinstance(event, RejectConnection):
                    self.rejected = event.status_code
                    return

    def _more_events(self) -> list[object]:
        chunk = self.sock.recv(65536)
        self.ws.receive_data(chunk or None)
        return list(self.ws.events())

    def send_json(self, message: object) -> None:
        self.send_text(json.dumps(message))

    def send_text(self, text: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(text)))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(self.ws.send(BytesMessage(data)))

    def receive(self) -> dict:
        """The next message from the server, as JSON (answering pings on the way)."""
        while True:
            while self._events:
                event = self._events.pop(0)
                if isinstance(event, TextMessage):
                    self._text += event.data
                    if event.message_finished:
                        text, self._text = self._text, ""
                        return json.loads(text)
                elif isinstance(event, Ping):
                    self.sock.sendall(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.closed_with = event.code
                    raise AssertionError(f"closed by the server with {event.code}")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("connection closed without a WebSocket close")
            self.ws.receive_data(chunk)
            self._events.extend(self.ws.events())

    def receive_until(self, kind: str) -> dict:
        """The next message of type `kind`, passing over others."""
        while True:
            message = self.receive()
            if message["type"] == kind:
                return message

    def events(self) -> list[dict]:
        """The events of the next "events" message."""
        return self.receive_until("events")["events"]

    def wait_closed(self) -> int:
        """Read until the server closes; its close code."""
        try:
            while True:
                self.receive()
        except AssertionError:
            pass
        assert self.closed_with is not None
        return self.closed_with

    def login(self, nick: str) -> WebClient:
        assert self.receive()["type"] == "welcome"
        self.send_json({"type": "login", "nick": nick})
        assert self.receive_until("logged-in")["nick"] == nick
        return self

    def close(self) -> None:
        self.sock.close()
