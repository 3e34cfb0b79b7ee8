"""
--transcript: every public event in the room as one JSON line, for the
record and for history that survives a restart.

    {"ts": "2026-11-21T14:02:03Z", "event": "joined", "nick": "alice", "count": 3}
    {"ts": "2026-11-21T14:02:09Z", "event": "said", "nick": "alice", "text": "hi"}
    {"ts": "2026-11-21T14:02:15Z", "event": "acted", "nick": "bob", "text": "waves"}
    {"ts": "2026-11-21T14:03:00Z", "event": "renamed", "old": "alice", "new": "al"}
    {"ts": "2026-11-21T14:04:00Z", "event": "left", "nick": "bob", "reason": "Quit"}

Private messages are never written.  Each line is flushed as it is written,
so a crash (even kill -9) loses nothing already written.  The file rotates by
size with twisted.python.logfile: PATH.1 is the newest old file, and at most
five old files are kept.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

from attrs import asdict
from twisted.logger import Logger
from twisted.python.logfile import LogFile

from chatd.telnet.render import Acted, Event, Joined, Left, Renamed, Said

log = Logger()

KEPT_FILES = 5
_KINDS: dict[str, type] = {"joined": Joined, "said": Said, "acted": Acted, "renamed": Renamed, "left": Left}
_NAMES = {kind: name for name, kind in _KINDS.items()}


def encode(when: float, event: Event) -> str:
    stamp = datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"ts": stamp, "event": _NAMES[type(event)], **asdict(event)}, ensure_ascii=False) + "\n"


def decode(line: str) -> tuple[float, Event] | None:
    """The (time, event) of one transcript line, or None for a line that is not one (a torn last line)."""
    try:
        fields = json.loads(line)
        kind = _KINDS[fields.pop("event")]
        when = datetime.strptime(fields.pop("ts"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
        return when, kind(**fields)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class Transcript:
    """Appends public events to a size-rotated file."""

    def __init__(self, path: str, max_bytes: int) -> None:
        _end_torn_line(path)
        self._file = LogFile.fromFullPath(path, rotateLength=max_bytes, maxRotatedFiles=KEPT_FILES)

    def record(self, when: float, event: Event) -> None:
        try:
            self._file.write(encode(when, event))
            self._file.flush()
        except OSError as failure:  # a full disk must not take the room down
            log.error("cannot write the transcript: {reason}", reason=failure)

    def close(self) -> None:
        self._file.close()


def _end_torn_line(path: str) -> None:
    """
    A last line without its newline (a power cut or a full disk mid-write)
    gets one, so the next event starts a line of its own instead of being
    glued to the fragment, where no reader could decode it.
    """
    try:
        with open(path, "rb+") as file:
            if file.seek(0, os.SEEK_END) == 0:
                return
            file.seek(-1, os.SEEK_END)
            if file.read(1) != b"\n":
                file.write(b"\n")
    except FileNotFoundError:
        pass


def recent_messages(path: str, count: int) -> list[tuple[float, Event]]:
    """
    The last `count` messages and actions in the transcript at `path`,
    oldest first, reading the rotated files only as far back as needed.
    """
    found: list[tuple[float, Event]] = []
    for name in [path] + [f"{path}.{index}" for index in range(1, KEPT_FILES + 1)]:
        if count <= len(found) or not os.path.exists(name):
            continue
        with open(name, encoding="utf-8", errors="replace") as file:
            decoded = (decode(line) for line in file)
            found = [item for item in decoded if item is not None and isinstance(item[1], (Said, Acted))] + found
    return found[-count:] if count else []
