"""
Accounts through the IRC door, in memory with an in-memory store: SASL
PLAIN as irssi, WeeChat and HexChat speak it, PASS, a guest who identifies
to NickServ, and NickServ's REGISTER, all answered by chatd itself.
"""

import base64

import pytest
from twisted.internet.task import Clock

from chatd.core.server import ChatServer
from chatd.core.turn import Turn
from chatd.irc.protocol import IrcDoor
from chatd.net.door import Settings
from tests.fakes import MemoryStore
from tests.irc.test_irc import Client, codes, join_all


@pytest.fixture
def store():
    return MemoryStore(accounts=[("bob", "correct horse")])


@pytest.fixture
def factory(store):
    clock = Clock()
    return IrcDoor(ChatServer("lab", clock, turn=Turn(clock), store=store), Settings("lab"), clock)


def plain(*parts):
    return base64.b64encode("\0".join(parts).encode()).decode()


def test_sasl_plain_logs_in_to_the_account_before_registration(factory):
    """CAP LS offers sasl; REQ is ACKed; AUTHENTICATE PLAIN with the right password: 900 and 903, then the welcome."""
    bob = Client(factory, 1)
    bob.send("CAP LS 302", "NICK bob", "USER bob 0 * :Bob")
    assert bob.take() == [":lab CAP * LS :account-notify account-tag away-notify batch draft/chathistory draft/read-marker echo-message extended-join extended-monitor invite-notify labeled-response message-tags multi-prefix server-time setname userhost-in-names sasl=PLAIN"]
    bob.send("CAP REQ :sasl")
    assert bob.take() == [":lab CAP * ACK sasl"]
    bob.send("AUTHENTICATE PLAIN")
    assert bob.take() == ["AUTHENTICATE +"]
    bob.send(f"AUTHENTICATE {plain('bob', 'bob', 'correct horse')}")
    assert bob.take() == [":lab 900 * *!*@chatd bob :You are now logged in as bob",
                          ":lab 903 * :SASL authentication successful"]
    bob.send("CAP END")
    welcome = bob.take()
    assert codes(welcome)[0] == "001" and ":bob!bob@chatd JOIN #lobby" in welcome


def test_sasl_with_a_wrong_password_fails_with_904_and_other_mechanisms_with_908(factory):
    """A wrong password is 904; EXTERNAL is 908 (PLAIN is what there is) and 904; * aborts with 906."""
    bob = Client(factory, 1)
    bob.send("CAP LS", "CAP REQ :sasl", "AUTHENTICATE EXTERNAL")
    assert bob.take()[-2:] == [":lab 908 * PLAIN :are available SASL mechanisms",
                               ":lab 904 * :SASL authentication failed"]
    bob.send("AUTHENTICATE PLAIN", f"AUTHENTICATE {plain('', 'bob', 'wrong horse')}")
    assert bob.take() == ["AUTHENTICATE +", ":lab 904 * :SASL authentication failed"]
    bob.send("AUTHENTICATE PLAIN", "AUTHENTICATE *")
    assert bob.take() == ["AUTHENTICATE +", ":lab 906 * :SASL authentication aborted"]


def test_pass_with_the_registered_nicknames_password_logs_in_as_it(factory):
    """PASS before NICK and USER: the registered nickname is the client's at once."""
    bob = Client(factory, 1)
    bob.send("PASS :correct horse")
    assert codes(bob.register("bob"))[0] == "001"
    assert factory.server.nick_of(bob.session) == "bob"


def test_without_a_password_a_guest_identifies_to_nickserv_and_becomes_the_nickname(factory):
    """No password: welcomed as bob_1, told how to identify; /msg NickServ IDENTIFY renames it to bob."""
    bob = Client(factory, 1)
    lines = bob.register("bob")
    assert lines[0] == ":lab 001 bob_1 :Welcome to chatd on lab, bob_1"
    assert (":NickServ!NickServ@chatd NOTICE bob_1 :bob is registered: you are bob_1 until you identify "
            "(/msg NickServ IDENTIFY password, or SASL)") in lines
    bob.send("PRIVMSG NickServ :IDENTIFY correct horse")
    lines = bob.take()
    assert ":lab 900 bob_1 bob_1!bob_1@chatd bob :You are now logged in as bob" in lines
    assert ":bob_1!bob_1@chatd NICK bob" in lines


def test_nickserv_register_keeps_the_nickname(factory, store):
    """/msg NickServ REGISTER pw email: the nickname is registered (the email is not kept), a weak one refused."""
    carol = Client(factory, 1)
    carol.register("carol")
    carol.send("PRIVMSG NickServ :REGISTER short", "PRIVMSG NickServ :REGISTER a fine password carol@example.org")
    lines = carol.take()
    assert ":lab NOTICE carol :Error: a password needs at least 8 characters" in lines
    assert (":NickServ!NickServ@chatd NOTICE carol :carol is registered to you now: from now on, it asks for your "
            "password") in lines
    assert store.passwords["carol"] == "a fine password"


def test_cap_ls_offers_nothing_where_no_accounts_are_kept():
    """With --no-store there is no account to log in to: no sasl, and REQ sasl is NAKed."""
    clock = Clock()
    factory = IrcDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab"), clock)
    alice = Client(factory, 1)
    alice.send("CAP LS 302", "CAP REQ :sasl")
    assert alice.take() == [":lab CAP * LS :account-notify account-tag away-notify batch draft/chathistory draft/read-marker echo-message extended-join extended-monitor invite-notify labeled-response message-tags multi-prefix server-time setname userhost-in-names", ":lab CAP * NAK sasl"]


def test_extended_join_and_account_notify_say_who_is_identified(factory):
    """
    extended-join: a JOIN (one's own too) carries the account ("*": none)
    and the real name; account-notify: a channel-mate's ACCOUNT when they
    identify; a client that asked for neither reads plain JOINs and no ACCOUNT.
    """
    alice, plain_client, bob = Client(factory, 1), Client(factory, 2), Client(factory, 3)
    assert ":alice!alice@chatd JOIN #lobby * :alice the tester" in alice.register("alice", "extended-join",
                                                                                   "account-notify")
    plain_client.register("plain")
    bob.register("bob")  # a guest, bob_1, until he identifies
    join_all("#lab", alice, plain_client, bob)
    bob.send("PRIVMSG NickServ :IDENTIFY correct horse", "PART #lab", "JOIN #lab")
    assert alice.take() == [":bob_1!bob_1@chatd NICK bob", ":bob!bob@chatd ACCOUNT bob",
                            ":bob!bob@chatd PART #lab", ":bob!bob@chatd JOIN #lab bob :bob the tester"]
    assert plain_client.take() == [":bob_1!bob_1@chatd NICK bob", ":bob!bob@chatd PART #lab",
                                   ":bob!bob@chatd JOIN #lab"]


def test_account_tag_marks_what_an_identified_user_says_for_those_who_asked(factory):
    """
    account-tag: an identified user's messages (and their echo) carry
    account=NAME for clients that negotiated it, and no other tag unless
    they negotiated message-tags too; a guest's carry none.
    """
    alice, tagged_too, bob = Client(factory, 1), Client(factory, 2), Client(factory, 3)
    alice.register("alice", "account-tag")
    tagged_too.register("tess", "account-tag", "message-tags")
    bob.send("PASS :correct horse")
    bob.register("bob", "account-tag", "echo-message")
    alice.send("JOIN #lab")
    tagged_too.send("JOIN #lab")
    bob.send("JOIN #lab")
    alice.take(), tagged_too.take(), bob.take()
    bob.send("@+draft/reply=x PRIVMSG #lab :hi")
    assert alice.take() == ["@account=bob :bob!bob@chatd PRIVMSG #lab :hi"]
    (line,) = tagged_too.take()
    assert line.startswith("@msgid=") and line.endswith(";account=bob :bob!bob@chatd PRIVMSG #lab :hi")
    assert bob.take() == ["@account=bob :bob!bob@chatd PRIVMSG #lab :hi"]  # the echo
    alice.send("PRIVMSG #lab :from a guest")
    assert bob.take() == [":alice!alice@chatd PRIVMSG #lab :from a guest"]
