"""
A real redis-server for the cluster tests: Debian's, on a free loopback
port, in a temporary directory of its own, saving nothing (so a restart
loses its data, as the fault tests want).
"""

from __future__ import annotations

import shutil
import signal
import socket
from pathlib import Path

from tests.chatd_process import Process
from tests.conftest import free_port_run

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port_run(1)
        self.process: Process | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start redis-server and wait for its own word that it is ready."""
        self.process = Process([
            REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
            "--save", "", "--appendonly", "no", "--logfile", "", "--daemonize", "no", "--protected-mode", "yes",
        ], self.directory)
        self.process.wait_for_log("Ready to accept connections")

    def pause(self) -> None:
        """SIGSTOP: its connections stay open and nothing is answered."""
        assert self.process is not None
        self.process.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.process.poll() is None:
            self.process.process.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.process.stop()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: gone at once, with everything it held."""
        assert self.process is not None
        self.process.stop(signal.SIGKILL)
        self.process = None

    def command(self, *args: str) -> bytes:
        """One command over a plain socket, its raw reply (for checks the tests make of Redis itself)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
            parts = [f"*{len(args)}\r\n".encode()]
            for arg in args:
                data = arg.encode()
                parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
            connection.sendall(b"".join(parts))
            return connection.recv(65536)
