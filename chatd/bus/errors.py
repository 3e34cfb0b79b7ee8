"""
Redis's error replies, as the bus meets them.  None is swallowed: each is
counted by kind (for /metrics), and logged once for each command and kind
while it lasts, naming it (`XADD: -OOM command not allowed ...`); the
caller handles it (keeps what it was sending and sends it again, or reads
again).  When the command succeeds again, one line says so.

A kind is the first word of Redis's reply (OOM, WRONGTYPE, NOPERM, ERR,
...), or "unexpected" for a reply the bus cannot read.  Redis is shared
and may say anything: a kind is letters only and at most MAX_KIND_CHARS,
and past MAX_KINDS different kinds the rest count as "other".
"""

from __future__ import annotations

import re

import txredisapi
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd.core.text import clean

log = Logger()

MAX_KINDS = 32
MAX_KIND_CHARS = 20
MAX_MESSAGE_CHARS = 200
UNEXPECTED = "unexpected"
_KIND = re.compile(r"[A-Z]{1,%d}" % MAX_KIND_CHARS)


def describe(failure: Failure) -> tuple[str, str]:
    """(kind, message) of an error reply, or of any other failure as an unexpected reply."""
    if failure.check(txredisapi.ResponseError):
        message = clean(str(failure.value))[:MAX_MESSAGE_CHARS]
        first = message.split(" ", 1)[0]
        return (first if _KIND.fullmatch(first) else "ERR"), message
    return UNEXPECTED, clean(f"{type(failure.value).__name__}: {failure.value}")[:MAX_MESSAGE_CHARS]


class ErrorReplies:
    """Every error reply of this node's Redis: counted by kind, and told once per command and kind."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}  # by kind, for /metrics
        self._told: dict[str, set[str]] = {}  # by command: the kinds logged since it last succeeded

    def note(self, command: str, failure: Failure, handling: str) -> str:
        """
        `command` failed with `failure`; `handling` says what the bus does
        about it (for the log line).  Returns the kind.
        """
        kind, message = describe(failure)
        counted = kind if kind in self.counts or len(self.counts) < MAX_KINDS else "other"
        self.counts[counted] = self.counts.get(counted, 0) + 1
        told = self._told.setdefault(command, set())
        if kind not in told:
            told.add(kind)
            shown = f"-{message}" if kind != UNEXPECTED else f"a reply the bus cannot read ({message})"
            log.warn("cluster: Redis answered {command} with {shown}; {handling}", command=command, shown=shown,
                     handling=handling)
        return kind

    def failing(self, command: str) -> bool:
        """Whether `command`'s last try failed (and was told)."""
        return bool(self._told.get(command))

    def succeeded(self, command: str, then: str) -> None:
        """`command` worked: if it had been failing, say so (`then`: what follows) once."""
        told = self._told.pop(command, None)
        if told:
            log.info("cluster: Redis answers {command} again; {then}", command=command, then=then)
