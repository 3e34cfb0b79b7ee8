"""
The bus's parts alone, on a fake clock and fake replies: the outbox (kept
until acknowledged, sent again in order after a refusal, bounded always),
what counts as seen (each entry of a node applied once, even out of
order), and how error replies are told and counted.
"""

from __future__ import annotations

import txredisapi
from twisted.internet import defer, task
from twisted.python.failure import Failure

from chatd.bus.errors import MAX_KINDS, ErrorReplies, describe
from chatd.bus.outbox import MAX_RETRY_SECONDS, RETRY_SECONDS, Outbox
from chatd.bus.reader import Seen


class FakeRedis:
    """Records each XADD as (seq, text) with its Deferred, for the test to answer."""

    def __init__(self):
        self.sent: list[tuple[int, str, defer.Deferred]] = []

    def send(self, entry):
        waiting = defer.Deferred()
        self.sent.append((entry.seq, entry.text, waiting))
        return waiting

    def texts(self):
        return [text for _, text, _ in self.sent]


def refusal(message="OOM command not allowed when used memory > 'maxmemory'."):
    return Failure(txredisapi.ResponseError(message))


def outbox(bound=100):
    clock, events = task.Clock(), []
    box = Outbox(clock, ErrorReplies(), lambda: events.append("refused"), lambda: events.append("accepted"), bound)
    return clock, box, events


def test_entries_are_sent_at_once_in_contact_and_kept_until_acknowledged():
    """Pipelined: each entry goes out as it comes; each is held until its own reply."""
    _, box, _ = outbox()
    redis = FakeRedis()
    box.open(redis.send)
    box.add("one", 1)
    box.add("two", 2)
    assert redis.texts() == ["one", "two"] and box.events == 3
    redis.sent[0][2].callback("1-0")
    assert box.events == 2
    redis.sent[1][2].callback("1-1")
    assert box.events == 0 and box.published == 3


def test_a_refused_entry_is_sent_again_first_with_a_backoff_then_the_rest_in_order():
    """-OOM: nothing newer goes out before the oldest is taken; retries back off; then the rest follow in order."""
    clock, box, events = outbox()
    redis = FakeRedis()
    box.open(redis.send)
    box.add("one", 1)
    redis.sent[0][2].errback(refusal())
    assert box.refused and events == ["refused"]
    box.add("two", 1)
    box.add("three", 1)
    assert redis.texts() == ["one"], "nothing newer is sent while Redis refuses"
    clock.advance(RETRY_SECONDS)
    assert redis.texts() == ["one", "one"]
    redis.sent[1][2].errback(refusal())
    clock.advance(RETRY_SECONDS)
    assert len(redis.sent) == 2, "the second retry waits twice as long"
    clock.advance(RETRY_SECONDS)
    assert redis.texts() == ["one", "one", "one"]
    assert [seq for seq, _, _ in redis.sent] == [1, 1, 1], "sent again under its own sequence number"
    redis.sent[2][2].callback("1-0")
    assert redis.texts()[3:] == ["two", "three"] and events == ["refused", "accepted"] and not box.refused
    for _, _, waiting in redis.sent[3:]:
        waiting.callback("1-1")
    assert box.events == 0


def test_retries_back_off_up_to_a_bound():
    """The wait between tries of a refused entry doubles but never passes MAX_RETRY_SECONDS."""
    clock, box, _ = outbox()
    redis = FakeRedis()
    box.open(redis.send)
    box.add("one", 1)
    for _ in range(10):
        redis.sent[-1][2].errback(refusal())
        clock.advance(MAX_RETRY_SECONDS)
    assert len(redis.sent) == 11, "never longer than MAX_RETRY_SECONDS between tries"


def test_a_lost_connection_keeps_everything_and_sends_it_again_in_order_on_contact():
    """
    Entries on their way when the connection goes are kept, not counted as refused, and sent again in order under
    their own sequence numbers.
    """
    _, box, events = outbox()
    redis = FakeRedis()
    box.open(redis.send)
    box.add("one", 1)
    box.add("two", 1)
    box.close()
    for _, _, waiting in redis.sent:
        waiting.errback(txredisapi.ConnectionError("lost"))
    box.add("three", 1)
    assert events == [] and box.events == 3, "a lost connection is not a refusal"
    again = FakeRedis()
    box.open(again.send)
    assert again.texts() == ["one", "two", "three"]
    assert [seq for seq, _, _ in again.sent] == [1, 2, 3]


def test_the_bound_holds_in_contact_too():
    """Redis refusing for long: the oldest entries not on their way go past the bound, and are counted."""
    clock, box, _ = outbox(bound=5)
    redis = FakeRedis()
    box.open(redis.send)
    box.add("zero", 1)
    redis.sent[0][2].errback(refusal())
    for number in range(1, 10):
        box.add(str(number), 1)
    assert box.events == 5 and box.dropped == 5
    clock.advance(RETRY_SECONDS)
    assert redis.texts()[-1] == "5", "the oldest kept is sent first"


def test_each_entry_of_a_node_is_seen_once_even_out_of_order():
    """An entry sent again after a refusal while a later one was taken is applied late, not lost, and not twice."""
    seen = Seen()
    assert [seen.first_time("a", seq) for seq in (1, 3, 2, 3, 2, 1)] == [True, True, True, False, False, False]
    seen.adopted("a", 10)
    assert not seen.first_time("a", 9) and seen.first_time("a", 11)
    seen.first_time("b", 5000)
    assert not seen.first_time("b", 1), "a gap wider than MAX_GAP_ENTRIES is entries that were lost"


def test_error_replies_are_told_once_per_command_and_kind_and_counted(log_lines):
    """
    Each kind of error reply is logged once per command until it succeeds again, counted every time, and an
    unreadable reply is its own kind.
    """
    errors = ErrorReplies()
    for _ in range(3):
        errors.note("XADD", refusal(), "kept")
    errors.note("XREAD", refusal("WRONGTYPE Operation against a key holding the wrong kind of value"), "again")
    errors.note("XREAD", Failure(KeyError("x")), "again")
    assert errors.counts == {"OOM": 3, "WRONGTYPE": 1, "unexpected": 1}
    assert log_lines == [
        "cluster: Redis answered XADD with -OOM command not allowed when used memory > 'maxmemory'.; kept",
        "cluster: Redis answered XREAD with -WRONGTYPE Operation against a key holding the wrong kind of value; again",
        "cluster: Redis answered XREAD with a reply the bus cannot read (KeyError: 'x'); again"]
    errors.succeeded("XADD", "on")
    errors.note("XADD", refusal(), "kept")
    assert len(log_lines) == 5, "told again after it had worked"


def test_what_redis_says_is_checked_before_it_is_a_kind():
    """Redis is shared: control bytes are cleaned, odd first words are ERR, and the number of kinds is bounded."""
    assert describe(refusal("\x1b[2Jevil\x07 text")) == ("ERR", "evil text")
    assert describe(refusal("LONG" * 6 + " x"))[0] == "ERR"
    errors = ErrorReplies()
    for number in range(MAX_KINDS + 5):
        letters = "".join(chr(65 + int(digit)) for digit in f"{number:02d}")
        errors.note("XADD", refusal(f"KIND{letters} x"), "kept")
    assert len(errors.counts) == MAX_KINDS + 1 and errors.counts["other"] == 5
