"""What IRCv3 chathistory's queries choose of a channel's history (chatd.core.history.chosen)."""

from chatd.core.events import Said
from chatd.core.history import chosen

LINES = [Said("#lab", "alice", f"line {n}", at=float(n), msgid=f"m{n}") for n in range(1, 11)]  # at 1.0 .. 10.0


def texts(events):
    return [event.text.split()[1] for event in events]


def test_latest_before_after_around_and_between_choose_the_nearest_oldest_first():
    """Each query's lines, oldest first, at most its limit, the nearest to its reference; a reference is left out."""
    assert texts(chosen(LINES, "LATEST", ("*", None), None, 3)) == ["8", "9", "10"]
    assert texts(chosen(LINES, "LATEST", ("timestamp", 8.0), None, 5)) == ["9", "10"]
    assert texts(chosen(LINES, "BEFORE", ("msgid", "m5"), None, 2)) == ["3", "4"]
    assert texts(chosen(LINES, "BEFORE", ("timestamp", 5.5), None, 2)) == ["4", "5"]
    assert texts(chosen(LINES, "AFTER", ("msgid", "m5"), None, 2)) == ["6", "7"]
    assert texts(chosen(LINES, "AROUND", ("msgid", "m5"), None, 4)) == ["3", "4", "5", "6"]
    assert texts(chosen(LINES, "BETWEEN", ("msgid", "m2"), ("timestamp", 6.0), 10)) == ["3", "4", "5"]
    assert texts(chosen(LINES, "BETWEEN", ("timestamp", 6.0), ("msgid", "m2"), 2)) == ["4", "5"]  # backwards: nearest to 6


def test_a_missing_msgid_or_no_limit_finds_nothing():
    """A msgid the history does not hold, or a limit of 0, finds no line."""
    assert chosen(LINES, "BEFORE", ("msgid", "gone"), None, 5) == []
    assert chosen(LINES, "LATEST", ("*", None), None, 0) == []
