"""
Accounts in the core (chatd.core.accounts): registered nicknames and their
passwords, guests, notes for people who are away and mentions, with an
in-memory store (tests.fakes.MemoryStore) and recording fake sessions.
"""

import pytest
from twisted.internet.task import Clock

from chatd.core import commands as c
from chatd.core import replies as r
from chatd.core.accounts import FAILURES_PER_ADDRESS, MAX_TRIES, password_weakness
from chatd.core.events import Renamed, Said
from chatd.core.server import ChatServer
from chatd.core.store import MAX_NOTES, Note
from tests.fakes import MemoryStore, Session


@pytest.fixture
def log():
    return []


@pytest.fixture
def store():
    return MemoryStore(accounts=[("bob", "correct horse")])


@pytest.fixture
def server(store):
    return ChatServer("lab", Clock(), store=store, history_size=10)


def arrive(server, log, name, address="127.0.0.1"):
    session = Session(name, log, address)
    server.arrive(session)
    return session


def log_in(server, log, name, password=None):
    session = arrive(server, log, name)
    server.handle(session, c.LogIn(name))
    if password is not None:
        server.handle(session, c.Identify(password))
    log.clear()
    return session


def replies_of(log, name):
    return [reply for who, kind, replies in log if who == name and kind == "replies" for reply in replies]


def test_a_registered_nickname_asks_for_its_password_and_the_right_one_logs_in(server, log):
    """Choosing a registered nickname asks for its password; the right password logs the user in."""
    bob = arrive(server, log, "bob")
    server.handle(bob, c.LogIn("Bob"))
    assert replies_of(log, "bob") == [r.PasswordWanted("bob", MAX_TRIES)]
    assert server.nick_of(bob) is None
    server.handle(bob, c.Identify("correct horse"))
    assert server.nick_of(bob) == "Bob"


def test_three_wrong_passwords_close_the_connection(server, log):
    """Each wrong password is said and asked again, with the tries left; the third closes the connection."""
    bob = arrive(server, log, "bob")
    server.handle(bob, c.LogIn("bob"))
    log.clear()
    server.handle(bob, c.Identify("wrong one"))
    assert replies_of(log, "bob") == [r.Error("wrong password for bob", "wrong-password", "bob"),
                                      r.PasswordWanted("bob", MAX_TRIES - 1)]
    server.handle(bob, c.Identify("wrong two"))
    log.clear()
    server.handle(bob, c.Identify("wrong three"))
    assert log == [("bob", "replies", [r.Error("wrong password 3 times: goodbye", "too-many-tries")]),
                   ("bob", "disconnect", "Wrong password")]
    assert server.nick_of(bob) is None


def test_tries_from_one_address_are_rate_limited_without_asking_the_store(server, store, log):
    """Past FAILURES_PER_ADDRESS wrong passwords a minute from one address, its tries wait and are not checked."""
    for number in range(FAILURES_PER_ADDRESS):
        guess = arrive(server, log, f"guess{number}", "192.0.2.9")
        server.handle(guess, c.LogIn("bob"))
        server.handle(guess, c.Identify("not it"))
    checks = store.checks
    other = arrive(server, log, "other", "192.0.2.9")
    server.handle(other, c.LogIn("bob"))
    log.clear()
    server.handle(other, c.Identify("correct horse"))
    assert store.checks == checks
    assert replies_of(log, "other")[0] == r.Error("too many wrong passwords from 192.0.2.9: wait 60 s",
                                                  "too-many-tries")
    elsewhere = arrive(server, log, "elsewhere", "192.0.2.10")
    server.handle(elsewhere, c.LogIn("bob"))
    server.handle(elsewhere, c.Identify("correct horse"))
    assert server.nick_of(elsewhere) == "bob"


def test_a_nickname_that_looks_like_a_registered_one_is_taken(server, log):
    """The look-alike rule covers registered nicknames as it does online ones (Cyrillic "о" for "o")."""
    fake = arrive(server, log, "fake")
    server.handle(fake, c.LogIn("b\u043eb"))
    assert replies_of(log, "fake") == [r.Error("nickname is taken: b\u043eb (it looks like bob, a registered "
                                               "nickname)", "nickname-taken", "b\u043eb")]


def test_a_password_with_the_login_logs_in_at_once(server, log):
    """A password that comes with the login (IRC's PASS) is checked, and nothing is asked."""
    bob = arrive(server, log, "bob")
    server.handle(bob, c.LogIn("bob", password="correct horse"))
    assert server.nick_of(bob) == "bob"
    assert not any(isinstance(reply, r.PasswordWanted) for reply in replies_of(log, "bob"))


def test_a_guest_identifies_later_and_becomes_the_registered_nickname(server, log):
    """A door that cannot ask (IRC) logs in as a guest; /identify with the password renames it to the account."""
    log_in(server, log, "alice")
    bob = arrive(server, log, "bob")
    server.handle(bob, c.LogIn("bob", as_guest=True))
    assert server.nick_of(bob) == "bob_1"
    assert r.GuestNickname("bob", "bob_1") in replies_of(log, "bob")
    log.clear()
    server.handle(bob, c.Identify("correct horse"))
    assert server.nick_of(bob) == "bob"
    assert r.Identified("bob") in replies_of(log, "bob")
    assert ("alice", "events", [Renamed("bob_1", "bob", at=0.0)]) in log


def test_sasl_identifies_before_the_login_which_then_asks_nothing(server, log):
    """An account named up front (SASL) is identified; logging in as it then asks no password."""
    bob = arrive(server, log, "bob")
    server.handle(bob, c.Identify("correct horse", "bob"))
    assert replies_of(log, "bob") == [r.Identified("bob")]
    server.handle(bob, c.LogIn("bob"))
    assert server.nick_of(bob) == "bob"


def test_register_refuses_weak_passwords_and_keeps_the_nickname(server, store, log):
    """/register: under 8 characters or the nickname itself is refused; then the nickname asks for the password."""
    carol = log_in(server, log, "carol")
    server.handle(carol, c.Register("short"))
    server.handle(carol, c.Register("Carol"))
    server.handle(carol, c.Register("carolcarol"))
    server.handle(carol, c.Register("a good secret"))
    assert replies_of(log, "carol") == [
        r.Error("a password needs at least 8 characters", "weak-password"),
        r.Error("a password needs at least 8 characters", "weak-password"),
        r.Registered("carol"),
        r.Error("you registered carol already", "already-registered", "carol"),
    ]
    assert store.passwords["carol"] == "carolcarol"
    server.depart(carol, "Quit")
    again = arrive(server, log, "again")
    server.handle(again, c.LogIn("carol"))
    assert replies_of(log, "again")[-1] == r.PasswordWanted("carol", MAX_TRIES)


def test_a_password_equal_to_the_nickname_is_refused(server, log):
    """A registration whose password is the nickname itself (in any case) is refused with a clear line."""
    name = log_in(server, log, "longname")
    server.handle(name, c.Register("LongName"))
    assert replies_of(log, "longname") == [r.Error("a password may not be the nickname itself", "weak-password")]


def test_password_and_unregister_need_the_password(server, store, log):
    """/password OLD NEW and /unregister PASSWORD check the password first; unregistered, the nickname is free."""
    bob = log_in(server, log, "bob", "correct horse")
    server.handle(bob, c.ChangePassword("wrong", "battery staple"))
    server.handle(bob, c.ChangePassword("correct horse", "battery staple"))
    assert store.passwords["bob"] == "battery staple"
    server.handle(bob, c.Unregister("battery staple"))
    assert replies_of(log, "bob") == [r.Error("wrong password for bob", "wrong-password", "bob"),
                                      r.PasswordChanged("bob"), r.Unregistered("bob")]
    assert server.registered("bob") is None


def test_renaming_to_a_registered_nickname_says_how_to_take_it(server, log):
    """A logged-in user renaming to a registered nickname is told to /identify it instead."""
    alice = log_in(server, log, "alice")
    server.handle(alice, c.Nick("BOB"))
    assert replies_of(log, "alice") == [r.Error("bob is registered: /identify bob PASSWORD takes it",
                                                "nickname-taken", "BOB")]


def test_a_message_for_a_registered_user_who_is_away_is_kept_and_given_once(server, log):
    """/msg to a registered user who is offline is kept; at their login they get it, once."""
    alice = log_in(server, log, "alice")
    server.handle(alice, c.Msg("bob", "the key is under the mat"))
    assert replies_of(log, "alice") == [r.NoteKept("bob", "the key is under the mat")]
    bob = log_in(server, log, "bob")
    server.handle(bob, c.Identify("correct horse"))
    assert r.NotesWhileAway((Note("alice", "the key is under the mat", 0.0),)) in replies_of(log, "bob")
    server.depart(bob, "Quit")
    log.clear()
    log_in(server, log, "bob", "correct horse")
    assert not any(isinstance(reply, r.NotesWhileAway) for _, _, replies in log for reply in replies)


def test_a_message_for_an_unregistered_nickname_offline_is_refused(server, log):
    """Only a registered nickname's messages are kept: for anyone else offline, "no such nick" as before."""
    alice = log_in(server, log, "alice")
    server.handle(alice, c.Msg("nobody", "hello"))
    assert replies_of(log, "alice") == [r.Error("no such nick: nobody", "no-such-nick", "nobody")]


def test_past_the_limit_the_sender_is_told_the_message_was_not_kept(server, store, log):
    """At most MAX_NOTES wait for one recipient; the next one's sender is told it was not kept."""
    store.notes["bob"] = [Note("x", "y", 0.0)] * MAX_NOTES
    alice = log_in(server, log, "alice")
    server.handle(alice, c.Msg("bob", "one more"))
    assert replies_of(log, "alice") == [r.Error(f"bob has {MAX_NOTES} messages waiting already: yours was not kept",
                                                "notes-full", "bob")]


def test_mentions_while_away_are_counted_at_login_and_listed(server, log):
    """A registered user who comes back hears how often each channel named them since they left; /mentions lists them."""
    clock = server.clock
    bob = log_in(server, log, "bob", "correct horse")
    clock.advance(10)
    server.depart(bob, "Quit")
    alice = log_in(server, log, "alice")
    clock.advance(5)
    server.handle(alice, c.Say("bob: are you there?"))
    server.handle(alice, c.Say("bobcat is not bob's"))
    server.handle(alice, c.Say("nothing for him"))
    bob = log_in(server, log, "bob")
    log.clear()
    server.handle(bob, c.Identify("correct horse"))
    assert r.MentionsWhileAway((("#lobby", 2),)) in replies_of(log, "bob")
    log.clear()
    server.handle(bob, c.Mentions())
    assert replies_of(log, "bob") == [r.MentionList((Said("#lobby", "alice", "bob: are you there?", at=15.0),
                                                     Said("#lobby", "alice", "bobcat is not bob's", at=15.0)))]


def test_a_session_gone_before_its_check_answers_is_left_alone(server, store, log):
    """The store's answer comes later: a session that left meanwhile is not logged in, nor told anything."""
    bob = arrive(server, log, "bob")
    server.handle(bob, c.LogIn("bob"))
    store.hold = True
    server.handle(bob, c.Identify("correct horse"))
    server.depart(bob, "Connection lost")
    log.clear()
    store.release()
    assert log == []
    assert server.count == 0


def test_everyone_online_hears_once_when_history_stops_being_kept(server, store, log):
    """The store's health going bad then good is told to everyone online, once each way."""
    log_in(server, log, "alice")
    for changed in store.watchers:
        changed(False)
    log_in(server, log, "bob", "correct horse")  # log_in clears the log: what a newcomer hears is checked below
    for changed in store.watchers:
        changed(True)
    assert replies_of(log, "alice") == replies_of(log, "bob") == [r.HistoryKeptAgain()]


def test_a_newcomer_hears_that_history_is_not_kept(server, store, log):
    """While the store fails, whoever logs in is told with their login."""
    store.healthy = False
    alice = arrive(server, log, "alice")
    server.handle(alice, c.LogIn("alice"))
    assert r.HistoryNotKept() in replies_of(log, "alice")


def test_everyone_online_hears_when_history_stops_being_kept(server, store, log):
    """The store starting to fail is told to everyone online at once."""
    log_in(server, log, "alice")
    for changed in store.watchers:
        changed(False)
    assert replies_of(log, "alice") == [r.HistoryNotKept()]


def test_history_comes_from_the_store(server, log):
    """/history N: the channel's last N kept lines, from the store."""
    alice = log_in(server, log, "alice")
    for text in ("one", "two", "three"):
        server.handle(alice, c.Say(text))
    log.clear()
    server.handle(alice, c.History(2))
    assert replies_of(log, "alice") == [r.HistoryShown("#lobby", (Said("#lobby", "alice", "two", at=0.0),
                                                                  Said("#lobby", "alice", "three", at=0.0)))]


def test_a_weak_password_is_refused_with_one_line():
    """Under 8 characters, or the nickname itself (any case): refused, saying why; otherwise None."""
    assert password_weakness("short", "alice") == "a password needs at least 8 characters"
    assert password_weakness("ALICEBOB", "alicebob") == "a password may not be the nickname itself"
    assert password_weakness("correct horse", "alice") is None


def test_a_wrong_password_with_the_login_lets_an_irc_client_in_as_a_guest(server, log):
    """IRC's PASS with the wrong password: the client is told, and enters as a guest (it cannot be asked again)."""
    bob = arrive(server, log, "bob")
    server.handle(bob, c.LogIn("bob", password="wrong horse", as_guest=True))
    assert server.nick_of(bob) == "bob_1"
    said = replies_of(log, "bob")
    assert said[0] == r.Error("wrong password for bob", "wrong-password", "bob")
    assert r.GuestNickname("bob", "bob_1") in said


def test_nobody_may_pose_as_nickserv(server, log):
    """NickServ is reserved: IRC clients send it passwords, and chatd answers for it."""
    eve = arrive(server, log, "eve")
    server.handle(eve, c.LogIn("NickServ"))
    assert replies_of(log, "eve") == [r.Error("nickname is reserved: NickServ", "bad-nickname", "NickServ")]


def test_unread_counts_follow_an_identified_user_to_their_next_login(server, log):
    """How far an identified user read a channel is kept; at the next login they hear what was said since."""
    clock = server.clock
    bob = log_in(server, log, "bob", "correct horse")
    alice = log_in(server, log, "alice")
    clock.advance(1)
    server.handle(alice, c.Say("read this"))
    server.handle(bob, c.Read("#lobby"))
    server.handle(alice, c.Read("#lobby"))  # not identified: nothing is kept
    server.depart(bob, "Quit")
    clock.advance(1)
    server.handle(alice, c.Say("one"))
    server.handle(alice, c.Say("two"))
    log.clear()
    bob = arrive(server, log, "bob")
    server.handle(bob, c.LogIn("bob"))
    server.handle(bob, c.Identify("correct horse"))
    assert r.Unread((("#lobby", 2),)) in replies_of(log, "bob")


def test_a_read_marker_moves_on_only_and_an_identified_users_is_kept_as_read_marks_are(server, log):
    """MarkRead sets how far one read (never back) and answers it; an identified user's goes to the store too."""
    bob = log_in(server, log, "bob", "correct horse")
    alice = log_in(server, log, "alice")
    log.clear()
    server.handle(bob, c.MarkRead("#lobby", 20.0))
    server.handle(bob, c.MarkRead("#lobby", 10.0))
    server.handle(alice, c.MarkRead("#Lobby", 5.0))
    server.handle(alice, c.MarkRead("#lobby"))
    assert replies_of(log, "bob") == [r.ReadMarker("#lobby", 20.0)] * 2
    assert replies_of(log, "alice") == [r.ReadMarker("#Lobby", 5.0), r.ReadMarker("#lobby", 5.0)]
    assert server.store.read_marks == {("bob", "#lobby"): 20.0}  # alice is not identified: hers is not kept


def test_read_markers_are_bounded_per_member(server, log):
    """Past MAX_READ_MARKS targets, the marker moved on longest ago makes room: a client cannot grow them for ever."""
    from chatd.core.server import MAX_READ_MARKS

    alice = log_in(server, log, "alice")
    for n in range(MAX_READ_MARKS + 1):
        server.handle(alice, c.MarkRead(f"nick{n}", 100.0 + n))
    log.clear()
    server.handle(alice, c.MarkRead("nick0"))
    server.handle(alice, c.MarkRead(f"nick{MAX_READ_MARKS}"))
    assert replies_of(log, "alice") == [r.ReadMarker("nick0", None), r.ReadMarker(f"nick{MAX_READ_MARKS}",
                                                                                   100.0 + MAX_READ_MARKS)]


def test_identifying_for_a_nickname_its_owner_holds_on_another_connection_does_not_take_it(server, log):
    """The owner online twice (the web page and telnet): /identify NICK on the second is told, and nothing breaks."""
    bob = log_in(server, log, "bob", "correct horse")
    other = log_in(server, log, "elsewhere")
    server.handle(other, c.Identify("correct horse", "bob"))
    assert replies_of(log, "elsewhere")[-1] == r.Error("bob is online already, on another connection",
                                                      "nickname-taken", "bob")
    assert (server.nick_of(bob), server.nick_of(other)) == ("bob", "elsewhere")


def test_a_password_is_the_same_on_every_door(server, store, log):
    """Spaces at either end and control characters are no part of a password, whichever door carried it."""
    carol = log_in(server, log, "carol")
    server.handle(carol, c.Register("  tea and\x07 biscuits \t"))
    assert store.passwords["carol"] == "tea and biscuits"
    server.depart(carol, "Quit")
    again = arrive(server, log, "again")
    server.handle(again, c.LogIn("carol", password="tea and biscuits\r"))
    assert server.nick_of(again) == "carol"
