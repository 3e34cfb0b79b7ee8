"""Client tags and message ids as the core carries them (chatd.core.tags), and what the bus may bring of them."""

from twisted.internet.task import Clock

from chatd.core import commands as c
from chatd.core.events import Said
from chatd.core.remote import checked
from chatd.core.server import ChatServer
from chatd.core.tags import MAX_TAG_BYTES, checked_msgid, checked_tags

from tests.fakes import Session


def test_client_tags_as_a_door_gives_them_pass_and_anything_else_is_dropped_whole():
    """Well-formed client tags pass; a space, a line end, a control byte, a server tag or too many bytes do not."""
    assert checked_tags("+typing=active;+draft/reply=ab-1;+example.com/flag") == "+typing=active;+draft/reply=ab-1;+example.com/flag"
    assert checked_tags("") == ""
    for bad in ("+a=b c", "+a=b\r\nQUIT", "+a=\x01", "time=now", "+a=b;;+c", "+" + "a" * MAX_TAG_BYTES):
        assert checked_tags(bad) == "", bad
    assert checked_msgid("a1b2c3d4-1f") == "a1b2c3d4-1f"
    assert checked_msgid("x y") == checked_msgid("<b>") == ""


def test_every_message_gets_its_own_msgid_and_keeps_its_senders_tags():
    """Each line said gets a msgid no other has; a door's tags and its msgid are kept as given."""
    log = []
    server = ChatServer("lab", Clock())
    alice, bob = Session("alice", log), Session("bob", log)
    for session, nick in ((alice, "alice"), (bob, "bob")):
        server.arrive(session)
        server.handle(session, c.LogIn(nick))
    log.clear()
    server.handle(alice, c.Say("one"))
    server.handle(alice, c.Say("two", tags="+typing=done", msgid="given-1"))
    said = [event for name, kind, events in log if name == "bob" and kind == "events" for event in events]
    assert said == [Said("#lobby", "alice", "one"), Said("#lobby", "alice", "two")]
    assert said[0].msgid and said[0].msgid != said[1].msgid and said[0].tags == ""
    assert (said[1].msgid, said[1].tags) == ("given-1", "+typing=done")


def test_tags_and_msgids_from_the_bus_are_checked():
    """A message from another node whose tags or msgid are not as a node makes them loses them, not its text."""
    event = checked(Said("#lab", "alice", "hi", msgid="bad id", tags="+a=b\r\nQUIT #lab", origin="b"))
    assert event == Said("#lab", "alice", "hi", origin="b") and (event.msgid, event.tags) == ("", "")
