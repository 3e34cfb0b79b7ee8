"""
Channel operators and modes (chatd.core.operators, chatd.core.modes), through
the server with recording fake sessions: who may change what, what each
mode lets through, kicks from one channel, invitations, and the same state
on every node of a cluster.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from chatd.core import commands as c
from chatd.core import replies as r
from chatd.core.events import Joined, Kicked, ModeChanged, Said, TopicChanged, from_json, to_json
from chatd.core.moderation import Moderation
from chatd.core.modes import full_mask, matches, read_mode_words, spelt
from chatd.core.remote import checked
from chatd.core.server import ChatServer
from tests.core.test_mirror import Wire, log_in
from tests.fakes import Session, current_channel


@pytest.fixture
def log():
    return []


@pytest.fixture
def server():
    return ChatServer("lab", Clock(), moderation=Moderation("sesame", Clock()))


def online(server, log, *names, address="127.0.0.1"):
    sessions = []
    for name in names:
        session = Session(name, log, address)
        server.arrive(session)
        server.handle(session, c.LogIn(name))
        sessions.append(session)
    log.clear()
    return sessions


def replies_to(log, name):
    return [reply for who, kind, items in log if who == name and kind == "replies" for reply in items]


def events_to(log, name):
    return [event for who, kind, items in log if who == name and kind == "events" for event in items]


# -- modes as words


def test_mode_words_read_as_irc_servers_read_them():
    """Arguments go to the letters that take them, in order; -k may carry the key; a bare b asks for the list."""
    assert read_mode_words(("+o-v+k", "bob", "carol", "pw")).changes == (("+o", "bob"), ("-v", "carol"), ("+k", "pw"))
    assert read_mode_words(("-k", "pw")).changes == (("-k", "pw"),)
    assert read_mode_words(("-kl",)).changes == (("-k", ""), ("-l", ""))
    assert read_mode_words(("+lt", "10")).changes == (("+l", "10"), ("+t", ""))
    assert read_mode_words(("b",)).lists == ("b",)
    assert read_mode_words(("+xo", "bob")).unknown == ("x",)
    assert read_mode_words(("+o",)).changes == ()  # an op without a nickname is dropped
    assert spelt((("+o", "bob"), ("+t", ""), ("-k", "*"))) == ("+ot-k", "bob", "*")


def test_masks_are_completed_and_match_with_wildcards_ignoring_case():
    """A bare nickname, user@host and *@host become nick!user@host masks; * and ? match, [ ] are themselves."""
    assert full_mask("bob") == "bob!*@*"
    assert full_mask("*@10.0.0.5") == "*!*@10.0.0.5"
    assert full_mask("u@h") == "*!u@h"
    assert matches("B?B!*@*", ["bob!bob@chatd"])
    assert matches("[x]*!*@*", ["[x]ray!u@h"]) and not matches("[x]*!*@*", ["xray!u@h"])
    assert not matches("bob!*@10.*", ["bob!bob@chatd", "bob!bob@192.168.1.2"])


# -- who may


def test_who_makes_a_channel_is_its_operator_and_others_are_not(server, log):
    """The maker of a channel is listed as @; a later joiner is not, and may not change its modes."""
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    server.handle(bob, c.Join("#lab"))
    assert replies_to(log, "bob")[0].nicks == ("@alice", "bob")
    log.clear()
    server.handle(bob, c.Mode("#lab", ("+m",)))
    assert log == [("bob", "replies", [r.Error("you are not an operator of #lab", "not-channel-operator", "#lab")])]


def test_the_default_channel_has_no_operator_and_its_topic_is_anyones(server, log):
    """#lobby is +n, not +t: nobody made it, so anyone may still set its topic."""
    alice, = online(server, log, "alice")
    server.handle(alice, c.Mode("#lobby"))
    assert log == [("alice", "replies", [r.ModesShown("#lobby", "+n", (), 0.0)])]
    server.handle(alice, c.Topic(None, "welcome"))
    assert server.channel("#lobby").topic == "welcome"


def test_an_operator_gives_ranks_and_everyone_in_the_channel_sees_it(server, log):
    """+o and +v reach every member as one ModeChanged, and member lists show @ and +."""
    alice, bob, carol = online(server, log, "alice", "bob", "carol")
    for who in (alice, bob, carol):
        server.handle(who, c.Join("#lab"))
    log.clear()
    server.handle(alice, c.Mode("#lab", ("+ov", "bob", "carol")))
    changed = ModeChanged("#lab", "alice", (("+o", "bob"), ("+v", "carol")))
    assert events_to(log, "carol") == [changed] and events_to(log, "alice") == [changed]
    server.handle(carol, c.Names("#lab"))
    assert replies_to(log, "carol")[-1] == r.ChannelMembers("#lab", ("@alice", "@bob", "+carol"))
    log.clear()
    server.handle(alice, c.Mode("#lab", ("+o", "bob")))  # bob is one already: nothing to say
    assert log == []


def test_a_rank_for_someone_not_in_the_channel_is_refused(server, log):
    """+o of a user elsewhere is 'not in #lab'; of nobody, 'no such nick'."""
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    log.clear()
    server.handle(alice, c.Mode("#lab", ("+o", "bob")))
    server.handle(alice, c.Mode("#lab", ("+o", "zed")))
    assert replies_to(log, "alice") == [r.Error("bob is not in #lab", "user-not-in-channel", "bob", ("#lab",)),
                                        r.Error("no such nick: zed", "no-such-nick", "zed")]


def test_topic_is_for_operators_while_t_is_on(server, log):
    """+t (a new channel's default) keeps the topic for operators; -t gives it to everyone."""
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    server.handle(bob, c.Join("#lab"))
    log.clear()
    server.handle(bob, c.Topic("#lab", "mine"))
    assert replies_to(log, "bob") == [r.Error("you are not an operator of #lab", "not-channel-operator", "#lab")]
    server.handle(alice, c.Mode("#lab", ("-t",)))
    server.handle(bob, c.Topic("#lab", "mine"))
    assert events_to(log, "alice")[-1] == TopicChanged("#lab", "bob", "mine")


def test_a_key_keeps_out_who_does_not_give_it(server, log):
    """+k: a join without the key (or a wrong one) is refused; with it, in; members see the key, others '*'."""
    alice, bob, carol = online(server, log, "alice", "bob", "carol")
    server.handle(alice, c.Join("#lab"))
    server.handle(alice, c.Mode("#lab", ("+k", "solder")))
    log.clear()
    server.handle(bob, c.Join("#lab"))
    server.handle(bob, c.Join("#lab", "wrong"))
    assert replies_to(log, "bob") == [r.Error("#lab has a key: /join #lab KEY", "bad-channel-key", "#lab")] * 2
    server.handle(bob, c.Join("#lab", "solder"))
    assert current_channel(server, bob) == "#lab"
    server.handle(bob, c.Mode("#lab"))
    server.handle(carol, c.Mode("#lab"))
    assert replies_to(log, "bob")[-1] == r.ModesShown("#lab", "+knt", ("solder",), 0.0)
    assert replies_to(log, "carol")[-1] == r.ModesShown("#lab", "+knt", ("*",), 0.0)


def test_a_limit_keeps_out_the_one_too_many(server, log):
    """+l 2: the third is refused as the channel is full; -l lets them in."""
    alice, bob, carol = online(server, log, "alice", "bob", "carol")
    server.handle(alice, c.Join("#lab"))
    server.handle(alice, c.Mode("#lab", ("+l", "2")))
    server.handle(bob, c.Join("#lab"))
    log.clear()
    server.handle(carol, c.Join("#lab"))
    assert replies_to(log, "carol") == [r.Error("#lab is full (2 members)", "channel-full", "#lab")]
    server.handle(alice, c.Mode("#lab", ("-l",)))
    server.handle(carol, c.Join("#lab"))
    assert current_channel(server, carol) == "#lab"


def test_a_bad_limit_or_key_is_refused_and_the_rest_made(server, log):
    """One bad argument is refused on its own; the command's other changes are made."""
    alice, = online(server, log, "alice")
    server.handle(alice, c.Join("#lab"))
    log.clear()
    server.handle(alice, c.Mode("#lab", ("+lm", "many")))
    assert replies_to(log, "alice") == [r.Error("a limit is a number of members, not many", "bad-mode-argument",
                                                "#lab", ("l", "many"))]
    assert events_to(log, "alice") == [ModeChanged("#lab", "alice", (("+m", ""),))]


def test_invite_only_lets_in_whom_an_operator_invites_once(server, log):
    """+i refuses a join; an operator's INVITE tells the invited, who then gets in once (past +k too)."""
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    server.handle(alice, c.Mode("#lab", ("+ik", "pw")))
    log.clear()
    server.handle(bob, c.Join("#lab"))
    assert replies_to(log, "bob") == [r.Error("#lab is invite only: an operator of it may /invite you",
                                              "invite-only", "#lab")]
    server.handle(alice, c.Invite("bob", "#lab"))
    assert replies_to(log, "alice")[-1] == r.Inviting("bob", "#lab")
    assert replies_to(log, "bob")[-1] == r.InvitedTo("alice", "#lab")
    server.handle(bob, c.Join("#lab"))
    assert current_channel(server, bob) == "#lab"
    server.handle(bob, c.Part("#lab"))
    log.clear()
    server.handle(bob, c.Join("#lab"))  # the invitation was used
    assert replies_to(log, "bob")[0].code == "invite-only"


def test_only_operators_invite_into_an_invite_only_channel(server, log):
    """A member who is not an operator may invite into an open channel, not into a +i one; nor someone in it."""
    alice, bob, carol = online(server, log, "alice", "bob", "carol")
    server.handle(alice, c.Join("#lab"))
    server.handle(bob, c.Join("#lab"))
    log.clear()
    server.handle(bob, c.Invite("alice", "#lab"))
    server.handle(bob, c.Invite("carol", "#lab"))
    assert replies_to(log, "bob") == [r.Error("alice is already in #lab", "already-in-channel", "alice", ("#lab",)),
                                      r.Inviting("carol", "#lab")]
    server.handle(alice, c.Mode("#lab", ("+i",)))
    log.clear()
    server.handle(bob, c.Invite("carol", "#lab"))
    assert replies_to(log, "bob") == [r.Error("you are not an operator of #lab", "not-channel-operator", "#lab")]


def test_a_ban_keeps_out_and_silences_and_an_exception_lets_through(server, log):
    """+b by nickname or by address refuses a join and silences a member already in; +e excepts."""
    alice, = online(server, log, "alice")
    bob, = online(server, log, "bob", address="10.0.0.7")
    server.handle(alice, c.Join("#lab"))
    server.handle(bob, c.Join("#lab"))
    server.handle(alice, c.Mode("#lab", ("+b", "*@10.0.0.7")))
    assert events_to(log, "bob")[-1] == ModeChanged("#lab", "alice", (("+b", "*!*@10.0.0.7"),))
    log.clear()
    server.handle(bob, c.Say("still here", "#lab"))
    assert replies_to(log, "bob") == [r.Error("you are banned from #lab", "cannot-send", "#lab")]
    assert events_to(log, "alice") == []
    server.handle(bob, c.Part("#lab"))
    log.clear()
    server.handle(bob, c.Join("#lab"))
    assert replies_to(log, "bob") == [r.Error("you are banned from #lab", "banned-from-channel", "#lab")]
    server.handle(alice, c.Mode("#lab", ("+e", "bob")))
    server.handle(bob, c.Join("#lab"))
    assert current_channel(server, bob) == "#lab"
    log.clear()
    server.handle(alice, c.Mode("#lab", ("b",)))
    [listed] = replies_to(log, "alice")
    assert listed.kind == "b" and [entry[:2] for entry in listed.entries] == [("*!*@10.0.0.7", "alice")]


def test_moderated_lets_only_operators_and_voiced_members_speak(server, log):
    """+m: a member without a rank is refused; +v speaks; the operator speaks."""
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    server.handle(bob, c.Join("#lab"))
    server.handle(alice, c.Mode("#lab", ("+m",)))
    log.clear()
    server.handle(bob, c.Say("hello?", "#lab"))
    assert replies_to(log, "bob")[0].code == "cannot-send"
    server.handle(alice, c.Mode("#lab", ("+v", "bob")))
    server.handle(bob, c.Say("hello!", "#lab"))
    assert events_to(log, "alice")[-1] == Said("#lab", "bob", "hello!")


def test_a_secret_channel_is_listed_only_to_its_members(server, log):
    """+s: /channels and NAMES leave it out for those outside it."""
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    server.handle(alice, c.Mode("#lab", ("+s",)))
    log.clear()
    server.handle(bob, c.Channels())
    server.handle(bob, c.Names("#lab"))
    server.handle(alice, c.Channels())
    assert [info.name for info in replies_to(log, "bob")[0].channels] == ["#lobby"]
    assert replies_to(log, "bob")[1].code == "no-such-channel"
    assert [info.name for info in replies_to(log, "alice")[0].channels] == ["#lobby", "#lab"]


def test_a_kick_puts_one_member_out_of_one_channel(server, log):
    """Everyone in the channel, the kicked one too, sees the kick; they stay online, talking in their last channel."""
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    server.handle(bob, c.Join("#lab"))
    server.handle(alice, c.Mode("#lab", ("+o", "bob")))
    log.clear()
    server.handle(bob, c.KickFrom("#lab", "alice", "enough"))
    kicked = Kicked("#lab", "alice", "bob", "enough", 1)
    assert events_to(log, "alice") == [kicked] and events_to(log, "bob") == [kicked]
    assert replies_to(log, "alice") == [r.NowTalkingIn("#lobby")]
    assert server.channels_of(alice) == ["#lobby"] and server.nick_of(alice) == "alice"
    server.handle(bob, c.Names("#lab"))
    assert replies_to(log, "bob")[-1] == r.ChannelMembers("#lab", ("@bob",))
    log.clear()
    server.handle(alice, c.KickFrom("#lab", "bob"))
    assert replies_to(log, "alice") == [r.Error("you are not an operator of #lab", "not-channel-operator", "#lab")]


def test_a_server_operator_may_do_what_a_channel_operator_may(server, log):
    """After /oper: modes and kicks in a channel one is not an operator of, and joins past its modes."""
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    server.handle(alice, c.Mode("#lab", ("+i",)))
    server.handle(bob, c.Oper("sesame"))
    server.handle(bob, c.Join("#lab"))
    assert current_channel(server, bob) == "#lab"
    server.handle(bob, c.KickFrom("#lab", "alice"))
    assert server.channels_of(alice) == ["#lobby"]


def test_a_founders_account_is_operator_whenever_it_joins():
    """A channel made by an identified user has them as founder: rejoining, they are @ again."""
    from tests.fakes import MemoryStore
    store = MemoryStore(accounts=[("alice", "correct horse")])
    server, log = ChatServer("lab", Clock(), store=store), []
    alice, bob = Session("alice", log), Session("bob", log)
    for session, nick in ((alice, "alice"), (bob, "bob")):
        server.arrive(session)
    server.handle(alice, c.LogIn("alice", "correct horse"))
    server.handle(bob, c.LogIn("bob"))
    server.handle(alice, c.Join("#lab"))
    server.handle(bob, c.Join("#lab"))
    server.handle(alice, c.Part("#lab"))
    log.clear()
    server.handle(alice, c.Join("#lab"))
    assert replies_to(log, "alice")[0].nicks == ("bob", "@alice")
    assert events_to(log, "bob") == [Joined("#lab", "alice", 2, "@")]


# -- in a cluster


def test_modes_ranks_kicks_and_invitations_are_the_same_on_every_node(log):
    """An operator on one node sets modes and ranks, kicks and invites users of another; both nodes agree."""
    wire = Wire()
    a, b = wire.node("a"), wire.node("b")
    alice, bob = log_in(a, log, "alice"), log_in(b, log, "bob")
    carol = log_in(b, log, "carol")
    a.handle(alice, c.Join("#lab"))
    wire.deliver()
    b.handle(bob, c.Join("#lab"))
    wire.deliver()
    a.handle(alice, c.Mode("#lab", ("+vi", "bob")))
    wire.deliver()
    assert b.channel("#lab").nicks == ("bob", "alice")
    b.handle(carol, c.Names("#lab"))
    b.turn.end()
    assert replies_to(log, "carol")[-1] == r.ChannelMembers("#lab", ("+bob", "@alice"))
    b.handle(carol, c.Join("#lab"))
    b.turn.end()
    assert replies_to(log, "carol")[-1].code == "invite-only"
    a.handle(alice, c.Invite("carol", "#lab"))
    wire.deliver()
    assert replies_to(log, "carol")[-1] == r.InvitedTo("alice", "#lab")
    b.handle(carol, c.Join("#lab"))
    wire.deliver()
    log.clear()
    a.handle(alice, c.KickFrom("#lab", "bob", "out"))
    wire.deliver()
    assert events_to(log, "bob") == [Kicked("#lab", "bob", "alice", "out", 2, origin="a")]
    assert a.channel("#lab").nicks == ("alice", "carol") and b.channel("#lab").nicks == ("carol", "alice")


def test_a_mode_change_from_the_bus_is_checked_like_input():
    """A ModeChanged read back from Redis keeps only changes this node would make: no unknown letter, no control bytes."""
    event = from_json(to_json(ModeChanged("#lab", "alice", (("+o", "bob"), ("+x", ""), ("+k", "a\x1bb"),
                                                            ("+k", "two words"))), exact_time=True), "#lobby")
    assert checked(event).changes == (("+o", "bob"),)


def test_a_node_that_comes_later_adopts_the_modes_ranks_and_bans(log):
    """A node's state carries its channels' modes, masks and its users' ranks; one adopting it has them too."""
    from chatd.core.remote import checked_state, state_from_json, state_to_json

    wire, clock = Wire(), Clock()
    clock.advance(1795000000)
    a = wire.node("a", clock)
    alice, bob = log_in(a, log, "alice"), log_in(a, log, "bob")
    a.handle(alice, c.Join("#lab"))
    a.handle(bob, c.Join("#lab"))
    a.handle(alice, c.Mode("#lab", ("+kvb", "solder", "bob", "*@10.*")))
    a.turn.end()
    late = wire.node("late")
    carol = log_in(late, log, "carol")
    late.adopt("a", checked_state(state_from_json(state_to_json(a.state()))))
    log.clear()
    late.handle(carol, c.Names("#lab"))
    late.handle(carol, c.Mode("#lab"))
    late.handle(carol, c.Join("#lab"))
    late.turn.end()
    assert replies_to(log, "carol") == [r.ChannelMembers("#lab", ("@alice", "+bob")),
                                        r.ModesShown("#lab", "+knt", ("*",), 1795000000.0),
                                        r.Error("#lab has a key: /join #lab KEY", "bad-channel-key", "#lab")]


def test_away_is_told_to_who_writes_and_whois_says_what_is_known(server, log):
    """/away marks a user; a private message to them is answered with why; /whois shows ranks, away, idle, secrets hidden."""
    alice, bob = online(server, log, "alice", "bob")
    server.clock.advance(100)
    server.handle(alice, c.Join("#lab"))
    server.handle(alice, c.Join("#hidden"))
    server.handle(alice, c.Mode("#hidden", ("+s",)))
    server.handle(alice, c.Away("lunch"))
    assert replies_to(log, "alice")[-1] == r.AwayChanged(True)
    log.clear()
    server.handle(bob, c.Msg("alice", "ping"))
    assert replies_to(log, "bob") == [r.PrivateSent("alice", "ping"), r.IsAway("alice", "lunch")]
    server.clock.advance(30)
    server.handle(bob, c.Whois("ALICE"))
    assert replies_to(log, "bob")[-1] == r.UserInfo("alice", "alice", "", ("#lobby", "@#lab"), "lunch", 0.0, 130.0)
    server.handle(bob, c.Whois("zed"))
    assert replies_to(log, "bob")[-1] == r.Error("no such nick: zed", "no-such-nick", "zed")
    server.handle(alice, c.Away(""))
    server.handle(bob, c.Msg("alice", "back?"))
    assert replies_to(log, "bob")[-1] == r.PrivateSent("alice", "back?")


def test_a_founders_channel_keeps_its_modes_across_a_restart():
    """An identified user's channel is theirs: its key and bans come back after a restart, and so does their @."""
    from tests.fakes import MemoryStore
    store = MemoryStore(accounts=[("alice", "correct horse")])
    server, log = ChatServer("lab", Clock(), store=store), []
    alice = Session("alice", log)
    server.arrive(alice)
    server.handle(alice, c.LogIn("alice", "correct horse"))
    server.handle(alice, c.Join("#lab"))
    server.handle(alice, c.Mode("#lab", ("+kb", "solder", "mallory")))
    again, log = ChatServer("lab", Clock(), store=store), []
    bob, alice = Session("bob", log), Session("alice", log)
    for session in (bob, alice):
        again.arrive(session)
    again.handle(bob, c.LogIn("bob"))
    again.handle(bob, c.Join("#lab"))
    assert replies_to(log, "bob")[-1].code == "bad-channel-key"
    again.handle(bob, c.Join("#lab", "solder"))  # bob makes it again, but it is alice's: no @ for him
    again.handle(alice, c.LogIn("alice", "correct horse"))
    again.handle(alice, c.Join("#lab", "solder"))
    assert replies_to(log, "alice")[-1].nicks == ("bob", "@alice")
    again.handle(alice, c.Mode("#lab", ("b",)))
    assert [entry[0] for entry in replies_to(log, "alice")[-1].entries] == ["mallory!*@*"]


def test_a_mode_argument_with_control_characters_is_refused(server, log):
    """A ban mask or key reaches every member's screen: one with an escape sequence is refused, not shown."""
    alice, = online(server, log, "alice")
    server.handle(alice, c.Join("#lab"))
    log.clear()
    server.handle(alice, c.Mode("#lab", ("+b", "\x1b[2J")))
    assert replies_to(log, "alice") == [r.Error("a mode's argument is one short word of text", "bad-mode-argument",
                                                "#lab", ("b", "*"))]
    assert events_to(log, "alice") == []


def test_a_mask_of_many_stars_is_matched_in_time():
    """Mask matching takes at most pattern x name steps: 60 stars against a name it misses does not backtrack for ever."""
    import time

    started = time.process_time()
    assert not matches("*a" * 60 + "b", ["a" * 60 + "!user@chatd"])
    assert matches("*a*" * 30, ["a" * 60])
    assert time.process_time() - started < 1.0  # a backtracking regular expression takes years


def test_a_notice_reaches_the_channel_past_its_modes_and_is_not_kept():
    """A channel notice goes to its members as Noticed, is refused where a line would be (+m), and history keeps none."""
    from chatd.core.events import Noticed

    server, log = ChatServer("lab", Clock(), history_size=5), []
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    server.handle(bob, c.Join("#lab"))
    log.clear()
    server.handle(alice, c.Notice("build passed", "#lab"))
    assert events_to(log, "bob") == [Noticed("#lab", "alice", "build passed")]
    assert server.channel("#lab").history == ()
    server.handle(alice, c.Mode("#lab", ("+m",)))
    server.handle(bob, c.Notice("me too", "#lab"))
    assert replies_to(log, "bob")[-1].code == "cannot-send"
