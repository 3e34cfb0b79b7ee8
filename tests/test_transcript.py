"""The transcript and recent history (chatd.service.transcript, chatd.core.history)."""

import json
import time

from chatd.core.history import History
from chatd.telnet.render import Acted, Joined, Left, Renamed, Said
from chatd.service.transcript import Transcript, decode, encode, recent_messages

NOON = 1795000000.0  # 2026-11-18T11:06:40Z


def hhmm(when):
    return time.strftime("%H:%M", time.localtime(when))


def test_history_shows_only_messages_and_actions_with_their_time():
    """Joins, leaves and renames are not history; the last `size` messages are, oldest first."""
    history = History(2)
    history.record(NOON, Said("alice", "one"))
    history.record(NOON + 60, Joined("bob", 2))
    history.record(NOON + 120, Acted("bob", "waves"))
    history.record(NOON + 180, Said("alice", "three"))
    history.record(NOON + 200, Renamed("alice", "al"))
    assert history.lines() == [
        "*** Recent messages:",
        f"[{hhmm(NOON + 120)}] * bob waves",
        f"[{hhmm(NOON + 180)}] <alice> three",
        "*** End of recent messages",
    ]


def test_no_history_sends_nothing():
    """Without messages (or with --history 0) a joining user gets no history lines at all."""
    assert History(20).lines() == []
    zero = History(0)
    zero.record(NOON, Said("alice", "hi"))
    assert zero.lines() == []


def test_every_public_event_round_trips_through_a_json_line():
    """One JSON object per line with a UTC timestamp, and back."""
    for event in (Joined("alice", 3), Said("alice", "héllo"), Acted("bob", "waves"), Renamed("alice", "al"), Left("bob", "Quit")):
        line = encode(NOON, event)
        assert line.endswith("\n") and line.count("\n") == 1
        assert json.loads(line)["ts"] == "2026-11-18T11:06:40Z"
        assert decode(line) == (NOON, event)
    assert decode('{"ts": "2026-11-18T08:26:40Z", "event": "said", "nick": "al') is None


def test_each_line_is_on_disk_as_soon_as_it_is_written(tmp_path):
    """Flushed per line: another reader sees it before the transcript is closed."""
    path = tmp_path / "room.jsonl"
    transcript = Transcript(str(path), 10_000_000)
    transcript.record(NOON, Said("alice", "hi"))
    assert path.read_text() == encode(NOON, Said("alice", "hi"))
    transcript.close()


def test_rotation_by_size_keeps_five_old_files(tmp_path):
    """Past max bytes the file rotates; at most five rotated files stay."""
    path = tmp_path / "room.jsonl"
    transcript = Transcript(str(path), 1024)
    for index in range(400):
        transcript.record(NOON + index, Said("alice", f"message {index:04d} " + "x" * 40))
    transcript.close()
    names = sorted(child.name for child in tmp_path.iterdir())
    assert names == ["room.jsonl", "room.jsonl.1", "room.jsonl.2", "room.jsonl.3", "room.jsonl.4", "room.jsonl.5"]
    assert all(child.stat().st_size <= 1024 + 200 for child in tmp_path.iterdir())


def test_recent_messages_span_rotated_files_and_skip_a_torn_last_line(tmp_path):
    """History after a restart: the last N messages across files, a half-written line ignored."""
    path = tmp_path / "room.jsonl"
    transcript = Transcript(str(path), 1024)
    for index in range(30):
        transcript.record(NOON + index, Said("alice", f"m{index} " + "y" * 60))
        transcript.record(NOON + index, Joined("bob", 2))
    transcript.close()
    with open(path, "a") as file:
        file.write('{"ts": "2026-11-18T08:27:00Z", "event": "said", "ni')  # kill -9 mid-line
    recent = recent_messages(str(path), 12)
    assert [event.text.split()[0] for _, event in recent] == [f"m{index}" for index in range(18, 30)]
    assert recent_messages(str(tmp_path / "missing.jsonl"), 5) == []


def test_an_event_after_a_torn_last_line_starts_a_line_of_its_own(tmp_path):
    """A transcript cut mid-line (power cut): the next event is still a JSON line, and history finds it."""
    path = tmp_path / "room.jsonl"
    path.write_text(encode(NOON, Said("alice", "whole")) + '{"ts": "2026-11-18T11:0')
    transcript = Transcript(str(path), 10_000)
    transcript.record(NOON + 60, Said("bob", "after the cut"))
    transcript.close()
    lines = path.read_text().splitlines()
    assert lines[1] == '{"ts": "2026-11-18T11:0'
    assert decode(lines[2]) == (NOON + 60, Said("bob", "after the cut"))
    assert [event for _, event in recent_messages(str(path), 5)] == [Said("alice", "whole"), Said("bob", "after the cut")]
