"""
--transcript: every public event as one JSON line (chatd.core.events'
codec), for the record and for history that survives a restart.

    {"ts": "2026-11-21T14:02:03Z", "event": "joined", "channel": "#lobby", "nick": "alice", "count": 3}
    {"ts": "2026-11-21T14:02:09Z", "event": "said", "channel": "#lobby", "nick": "alice", "text": "hi"}
    {"ts": "2026-11-21T14:02:15Z", "event": "acted", "channel": "#lab", "nick": "bob", "text": "waves"}
    {"ts": "2026-11-21T14:02:20Z", "event": "parted", "channel": "#lab", "nick": "bob", "reason": "", "count": 1}
    {"ts": "2026-11-21T14:02:30Z", "event": "topic", "channel": "#lab", "nick": "bob", "topic": "soldering"}
    {"ts": "2026-11-21T14:03:00Z", "event": "renamed", "old": "alice", "new": "al"}
    {"ts": "2026-11-21T14:04:00Z", "event": "left", "nick": "bob", "reason": "Quit"}

`left` (the chat) and `renamed` concern a user in every channel, so they
carry no channel.  In a channel above --quiet-joins, the transcript still
has every join and leave (the members see "crowd" summaries instead).
Private messages are never written.  Each line is flushed as it is written,
so a crash (even kill -9) loses nothing already written.  The file rotates
by size with twisted.python.logfile: PATH.1 is the newest old file, and at
most five old files are kept.  Lines written before channels existed (no
"channel") are read as the default channel's.
"""

from __future__ import annotations

import os
from collections import Counter, deque

from twisted.logger import Logger
from twisted.python.logfile import LogFile

from chatd.core.events import MESSAGES, Event, from_json, to_json
from chatd.core.nicknames import name_key

log = Logger()

KEPT_FILES = 5


class Transcript:
    """Appends public events to a size-rotated file."""

    def __init__(self, path: str, max_bytes: int) -> None:
        _end_torn_line(path)
        self._file = LogFile.fromFullPath(path, rotateLength=max_bytes, maxRotatedFiles=KEPT_FILES)

    def record(self, event: Event) -> None:
        try:
            self._file.write(to_json(event) + "\n")
            self._file.flush()
        except OSError as failure:  # a full disk must not take the chat down
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


def recent_messages(path: str, count: int, default_channel: str, max_channels: int) -> dict[str, list[Event]]:
    """
    The last `count` messages and actions of each channel (by key) in the
    transcript at `path` and its rotated files, oldest first; at most
    `max_channels` channels, those spoken in most recently.
    """
    if not count:
        return {}
    found: dict[str, deque[Event]] = {}
    for name in [f"{path}.{index}" for index in range(KEPT_FILES, 0, -1)] + [path]:  # oldest file first
        if not os.path.exists(name):
            continue
        with open(name, encoding="utf-8", errors="replace") as file:
            for line in file:
                event = from_json(line, default_channel)
                if isinstance(event, MESSAGES):
                    key = name_key(event.channel)
                    kept = found.pop(key, None) or deque(maxlen=count)
                    kept.append(event)
                    found[key] = kept  # now the most recently spoken in
                    if len(found) > max_channels:
                        del found[next(iter(found))]
    return {key: list(kept) for key, kept in found.items()}


def merged_recent(kept: dict[str, list[Event]], logged: dict[str, list[Event]], count: int) -> dict[str, list[Event]]:
    """
    The store's channels (their topics and recent lines), with the
    transcript's recent lines of each channel added: the transcript is
    written as each line is said, the store within a moment, so after a
    kill -9 the transcript may have a last line the store has not.  Each
    line once (a line is the same in both if its kind, second, nick and
    text are; as many times as the source that has it most often), oldest
    first, the last `count` of each channel; the channels in the order
    they were last used.
    """
    merged = dict(kept)
    for key, lines in logged.items():
        known = merged.pop(key, [])
        topics = [event for event in known if not isinstance(event, MESSAGES)]
        mine: list[Event] = [event for event in known if isinstance(event, MESSAGES)]
        have = Counter(_same(event) for event in mine)
        added: Counter[tuple[object, ...]] = Counter()
        for event in lines:
            added[_same(event)] += 1
            if added[_same(event)] > have[_same(event)]:
                mine.append(event)
        # By the second (all the transcript knows), keeping the order within one: the store's lines, then
        # those only the transcript has (said after them, and not yet in the store).
        mine.sort(key=lambda event: int(event.at))
        merged[key] = [*topics, *(mine[-count:] if count else [])]
    return merged


def _same(event: Event) -> tuple[object, ...]:
    """What a line is in both the store and the transcript (which has its time to the second)."""
    return (type(event), int(event.at), getattr(event, "nick", ""), getattr(event, "text", ""))
