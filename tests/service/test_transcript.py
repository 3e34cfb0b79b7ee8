"""The transcript and recent history (chatd.service.transcript, chatd.core.history)."""

import json

import attrs

from attrs import asdict
from hypothesis import given
from hypothesis import strategies as st

from chatd.core.events import LEFT_OUT_WHEN_EMPTY, Acted, Crowd, Joined, Left, Parted, Renamed, Said, TopicChanged, from_json, to_json
from chatd.core.history import History
from chatd.service.transcript import Transcript, merged_recent, recent_messages

NOON = 1795000000.0  # 2026-11-18T11:06:40Z


def test_history_keeps_only_messages_and_actions():
    """Joins, leaves and renames are not history; the last `size` messages are, oldest first."""
    history = History(2)
    history.record(Said("#lobby", "alice", "one", at=NOON))
    history.record(Joined("#lobby", "bob", 2, at=NOON + 60))
    history.record(Acted("#lobby", "bob", "waves", at=NOON + 120))
    history.record(Said("#lobby", "alice", "three", at=NOON + 180))
    history.record(Renamed("alice", "al", at=NOON + 200))
    assert history.recent() == (Acted("#lobby", "bob", "waves", at=NOON + 120), Said("#lobby", "alice", "three", at=NOON + 180))
    zero = History(0)
    zero.record(Said("#lobby", "alice", "hi"))
    assert zero.recent() == ()


EVENTS = [
    Joined("#lobby", "alice", 3, at=NOON), Said("#lab", "alice", "héllo", at=NOON), Acted("#lobby", "bob", "waves", at=NOON),
    Parted("#lab", "bob", "lunch", 2, at=NOON), TopicChanged("#lab", "al", "solder", at=NOON),
    Crowd("#lobby", 12, 3, 214, at=NOON), Renamed("alice", "al", at=NOON), Left("bob", "Quit", at=NOON),
]


def test_every_public_event_round_trips_through_a_json_line():
    """One JSON object per line with a UTC timestamp and its channel (none for left and renamed), and back."""
    for event in EVENTS:
        line = to_json(event)
        assert "\n" not in line
        fields = json.loads(line)
        assert fields["ts"] == "2026-11-18T11:06:40Z"
        assert ("channel" in fields) == (not isinstance(event, (Renamed, Left)))
        assert from_json(line, "#lobby") == event
    assert json.loads(to_json(Said("#lab", "al", "hi", at=NOON)))["channel"] == "#lab"
    assert from_json('{"ts": "2026-11-18T08:26:40Z", "event": "said", "nick": "al', "#lobby") is None


@given(st.floats(0, 2**33, allow_nan=False), st.text(max_size=4))
def test_every_event_round_trips_with_its_exact_time_and_origin_as_the_bus_sends_it(at, origin):
    """The cluster's bus: "ts" a number to the microsecond and more, read back as it was; the node from the entry."""
    from chatd.core.events import Banned, KickOrdered, Unbanned, Whispered

    for event in [*EVENTS, Whispered("al", "bob", "psst"), Banned("10.0.0.9", 0.5, "op"), Unbanned("10.0.0.9"),
                  KickOrdered("bob", "op", "spam")]:
        event = attrs.evolve(event, at=at)
        line = to_json(event, exact_time=True)
        assert isinstance(json.loads(line)["ts"], float)
        assert from_json(line, "#lobby", origin or "node-2") == attrs.evolve(event, origin=origin or "node-2")


@given(st.text(), st.text(max_size=8), st.integers(0, 10**6), st.text(max_size=4), st.text(max_size=4),
       st.text(max_size=4))
def test_a_line_is_json_dumps_of_the_fields(text, nick, count, origin, msgid, tags):
    """
    The hand-built line is exactly what json.dumps makes of the fields
    (ensure_ascii=False), for any text: the messages', written out in one
    step, with or without their msgid, tags and node, and any other event's.
    """
    from chatd.core.events import KIND_NAMES, Noticed

    messages = [kind("#lab", nick, text, at=NOON, origin=origin, msgid=msgid, tags=tags) for kind in (Said, Acted, Noticed)]
    for event in (*messages, Crowd("#lab", count, 0, count, (nick, text), (), at=NOON + 0.9)):
        fields = {"ts": "2026-11-18T11:06:40Z", "event": KIND_NAMES[type(event)],
                  **{name: value for name, value in asdict(event).items()
                     if name not in ("at", "origin") and (value or name not in LEFT_OUT_WHEN_EMPTY)}}
        if event.origin:
            fields["origin"] = event.origin
        assert to_json(event) == json.dumps(fields, ensure_ascii=False)


def test_lines_from_before_channels_are_the_default_channels():
    """A transcript written by chatd before channels: its messages were said in the default channel."""
    old = '{"ts": "2026-11-18T11:06:40Z", "event": "said", "nick": "alice", "text": "hi"}'
    assert from_json(old, "#hall") == Said("#hall", "alice", "hi", at=NOON)


def test_each_line_is_on_disk_as_soon_as_it_is_written(tmp_path):
    """Flushed per line: another reader sees it before the transcript is closed."""
    path = tmp_path / "room.jsonl"
    transcript = Transcript(str(path), 10_000_000)
    transcript.record(Said("#lobby", "alice", "hi", at=NOON))
    assert path.read_text() == to_json(Said("#lobby", "alice", "hi", at=NOON)) + "\n"
    transcript.close()


def test_rotation_by_size_keeps_five_old_files(tmp_path):
    """Past max bytes the file rotates; at most five rotated files stay."""
    path = tmp_path / "room.jsonl"
    transcript = Transcript(str(path), 1024)
    for index in range(400):
        transcript.record(Said("#lobby", "alice", f"message {index:04d} " + "x" * 40, at=NOON + index))
    transcript.close()
    names = sorted(child.name for child in tmp_path.iterdir())
    assert names == ["room.jsonl", "room.jsonl.1", "room.jsonl.2", "room.jsonl.3", "room.jsonl.4", "room.jsonl.5"]
    assert all(child.stat().st_size <= 1024 + 200 for child in tmp_path.iterdir())


def test_recent_messages_span_rotated_files_and_skip_a_torn_last_line(tmp_path):
    """History after a restart: the last N messages of each channel across files, a half-written line ignored."""
    path = tmp_path / "room.jsonl"
    transcript = Transcript(str(path), 1024)
    for index in range(30):
        transcript.record(Said("#lobby", "alice", f"m{index} " + "y" * 60, at=NOON + index))
        transcript.record(Joined("#lobby", "bob", 2, at=NOON + index))
        if index % 10 == 0:
            transcript.record(Said("#Lab", "bob", f"lab{index}", at=NOON + index))
    transcript.close()
    with open(path, "a") as file:
        file.write('{"ts": "2026-11-18T08:27:00Z", "event": "said", "ni')  # kill -9 mid-line
    recent = recent_messages(str(path), 12, "#lobby", 100)
    assert [event.text.split()[0] for event in recent["#lobby"]] == [f"m{index}" for index in range(18, 30)]
    assert [event.text for event in recent["#lab"]] == ["lab10", "lab20"]  # lab0 rotated away; found by key
    assert recent_messages(str(path), 12, "#lobby", 1).keys() == {"#lobby"}  # the channel spoken in last
    assert recent_messages(str(tmp_path / "missing.jsonl"), 5, "#lobby", 100) == {}


def test_an_event_after_a_torn_last_line_starts_a_line_of_its_own(tmp_path):
    """A transcript cut mid-line (power cut): the next event is still a JSON line, and history finds it."""
    path = tmp_path / "room.jsonl"
    whole, after = Said("#lobby", "alice", "whole", at=NOON), Said("#lobby", "bob", "after the cut", at=NOON + 60)
    path.write_text(to_json(whole) + "\n" + '{"ts": "2026-11-18T11:0')
    transcript = Transcript(str(path), 10_000)
    transcript.record(after)
    transcript.close()
    lines = path.read_text().splitlines()
    assert lines[1] == '{"ts": "2026-11-18T11:0'
    assert from_json(lines[2], "#lobby") == after
    assert recent_messages(str(path), 5, "#lobby", 100) == {"#lobby": [whole, after]}


def test_the_stores_history_and_the_transcripts_are_merged_each_line_once():
    """
    After a kill -9 the transcript may hold a last line the store has not:
    the merge has each line once, in the order said (the transcript's times
    are whole seconds), the last `count`, and the store's topic first.
    """
    topic = TopicChanged("#lab", "alice", "robots", at=99.0)
    kept = {"#lab": [topic, Said("#lab", "alice", "first", at=100.2), Acted("#lab", "bob", "waves", at=100.7)],
            "#lobby": [Said("#lobby", "bob", "hi", at=50.5)]}
    logged = {"#lab": [Acted("#lab", "bob", "waves", at=100.0), Said("#lab", "alice", "third", at=100.0)],
              "#new": [Said("#new", "carol", "only here", at=101.0)]}
    merged = merged_recent(kept, logged, 2)
    assert merged["#lab"] == [topic, Acted("#lab", "bob", "waves", at=100.7), Said("#lab", "alice", "third", at=100.0)]
    assert merged["#lobby"] == [Said("#lobby", "bob", "hi", at=50.5)]
    assert merged["#new"] == [Said("#new", "carol", "only here", at=101.0)]
    assert list(merged) == ["#lobby", "#lab", "#new"]  # the last used last
