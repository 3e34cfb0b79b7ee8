"""
Accounts: registered nicknames, the passwords that guard them, and what
waits for their owners while they are away.  Pure: the store
(chatd.core.store) hashes, checks and keeps; this decides.

- **Who is registered** is known here, in memory (read from the store at
  the start), in a Registry like the one of online nicknames, so a
  nickname that looks like a registered one is refused as taken, and a
  registered one asks for its password, without waiting for the disk.
- **A password** is asked for (`PasswordWanted`), or comes with the login
  (IRC's PASS), or before it (IRC's SASL); a door that cannot ask (IRC)
  logs its user in as a guest, who may identify later and then becomes
  the registered nickname.  MAX_TRIES wrong passwords close the
  connection, and one address gets FAILURES_PER_ADDRESS wrong passwords
  per FAILURE_SECONDS: past that, its tries wait.  One check at a time
  per session.  A password is never logged, and no reply carries it.
- **While its owner is away**, a private message to a registered nickname
  is kept as a note; at the owner's next login (after the password) come
  the notes, once, and how many times each channel named them since they
  left.

Every answer from the store comes in a later reactor turn: the session may
have gone, or the account been dropped, meanwhile, and both are checked.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable

from typing import Any

from attrs import define
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd.core import replies
from chatd.core.channel import Member
from chatd.core.nicknames import MAX_NICK_CHARS, RateWindow, Registry, name_key
from chatd.core.roster import Roster
from chatd.core.session import ISession
from chatd.core.store import MAX_NOTES, IStore, KeptAccount, Note, StoreUnavailable, Taken
from chatd.core.text import clean

log = Logger()

MAX_TRIES = 3
FAILURES_PER_ADDRESS = 10
FAILURE_SECONDS = 60.0
MIN_PASSWORD_CHARACTERS = 8


def same_everywhere(password: str) -> str:
    """
    A password as every door passes it on: without control characters and
    without spaces at either end, so one typed on telnet (which cleans and
    trims a line) is the same on IRC or the web page.
    """
    return clean(password).strip()


def password_weakness(password: str, nick: str) -> str | None:
    """Why `password` may not guard `nick` (one line), or None."""
    if len(password) < MIN_PASSWORD_CHARACTERS:
        return f"a password needs at least {MIN_PASSWORD_CHARACTERS} characters"
    if password.casefold() == nick.casefold():
        return "a password may not be the nickname itself"
    return None


@define(eq=False)
class Account:
    """A registered nickname, as the chat knows it."""

    nick: str  # as registered
    left_at: float | None = None  # when its owner last left the chat


@define(eq=False)
class Hooks:
    """What the accounts ask of the server."""

    begin_turn: Callable[[], None]
    tell: Callable[..., None]
    remove: Callable[[ISession, object, str], None]
    log_in: Callable[[ISession, str], None]  # try a login again: the session is identified now
    enter: Callable[[ISession, str], None]  # log in as this (free, unregistered) nickname
    rename: Callable[[Member, str], None]  # the member takes its account's nickname
    member: Callable[[ISession], Member | None]
    account_changed: Callable[[Member], None]  # a member online identified, or lost their account


class Accounts:
    """The chat's accounts (see the module's docstring)."""

    def __init__(self, clock: IReactorTime, roster: Roster, store: Callable[[], IStore], hooks: Hooks) -> None:
        self._clock = clock
        self._roster = roster
        self._store = store
        self._hooks = hooks
        self.registered: Registry[Account] = Registry()
        self.identified: dict[ISession, Account] = {}
        self._asked: dict[ISession, tuple[Account, str]] = {}  # the password prompt is out: account, nick typed
        self._wanted: dict[ISession, Account] = {}  # logged in as a guest, wanting this account
        self._tries: dict[ISession, int] = {}  # wrong passwords so far
        self._busy: set[ISession] = set()  # a check (or a registration) is under way
        self._away_since: dict[ISession, float | None] = {}  # when an identified member last left, for /mentions
        self._failures = RateWindow(FAILURES_PER_ADDRESS, FAILURE_SECONDS)
        self.wrong_passwords = 0  # for /metrics

    def load(self, kept: Iterable[KeptAccount]) -> None:
        for account in kept:
            if self.registered.holder(account.nick) is None:
                self.registered.claim(account.nick, Account(account.nick, account.left_at))

    def sync(self, kept: Iterable[KeptAccount]) -> None:
        """
        The registered nicknames as the cluster's store has them now: other
        nodes' registrations (and the list at the start), expiries and
        departures.  A user of this node who holds a nickname registered
        elsewhere meanwhile, without its password, becomes a guest.
        """
        now = {name_key(account.nick): account for account in kept}
        freed = added = 0
        for account in self.registered.holders():
            if name_key(account.nick) not in now:
                self.forget(account.nick)
                freed += 1
        for found in now.values():
            known = self.registered.holder(found.nick)
            if known is None:
                new = Account(found.nick, found.left_at)
                self.registered.claim(found.nick, new)
                self._displace(new)
                added += 1
            elif found.left_at is not None and (known.left_at is None or found.left_at > known.left_at):
                known.left_at = found.left_at  # left on another node
        if added or freed:
            log.info("accounts: {added} registered and {freed} freed in the cluster; {count} registered in all",
                     added=added, freed=freed, count=len(self.registered))

    def _displace(self, account: Account) -> None:
        """Members of this node holding `account`'s nickname (or a look-alike) without its password: guests now."""
        for session, member in list(self._roster.members.items()):
            if self.registered.clash(member.nick, self.identified.get(session)) is None:
                continue
            guest = self._guest_name(session, member.nick)
            if guest is not None:
                self._wanted[session] = account
                self._hooks.rename(member, guest)
                self._hooks.tell(session, replies.GuestNickname(account.nick, guest))

    def account_of(self, session: ISession) -> str:
        """The registered nickname `session` identified for; "" if none."""
        account = self.identified.get(session)
        return "" if account is None else account.nick

    def identified_nicks(self) -> list[str]:
        return [account.nick for account in self.identified.values()]

    # -- logging in

    def holds_back(self, session: ISession, nick: str, password: str | None, as_guest: bool) -> bool:
        """
        Whether an account keeps `session` from logging in as `nick` now;
        if so, the session was told why, or asked for the password, or is
        being checked, or went in as a guest.
        """
        clash = self.registered.clash(nick, self.identified.get(session))
        if clash is None:
            return False
        account = self.registered.holder(clash)
        assert account is not None
        tell = self._hooks.tell
        if name_key(account.nick) != name_key(nick):
            tell(session, replies.Error(f"nickname is taken: {nick} (it looks like {account.nick}, a registered "
                                        "nickname)", "nickname-taken", nick))
        elif password is not None:
            self._check(session, account, password, lambda: self._hooks.log_in(session, nick),
                        (lambda: self._as_guest(session, account, nick)) if as_guest else None)
        elif as_guest:
            self._as_guest(session, account, nick)
        else:
            self._asked[session] = (account, nick)
            tell(session, replies.PasswordWanted(account.nick, MAX_TRIES - self._tries.get(session, 0)))
        return True

    def _as_guest(self, session: ISession, account: Account, nick: str) -> None:
        guest = self._guest_name(session, nick)
        if guest is None:
            self._hooks.tell(session, replies.Error(f"{nick} is registered: log in with its password",
                                                    "nickname-taken", nick))
            return
        self._wanted[session] = account
        self._hooks.enter(session, guest)
        self._hooks.tell(session, replies.GuestNickname(account.nick, guest))

    def keeps_from(self, session: ISession, nick: str) -> bool:
        """Whether an account keeps a logged-in `session` from renaming to `nick` (it was told why)."""
        clash = self.registered.clash(nick, self.identified.get(session))
        if clash is None:
            return False
        if name_key(clash) == name_key(nick):
            account = self.registered.holder(clash)
            assert account is not None
            refusal = replies.Error(f"{account.nick} is registered: /identify {account.nick} PASSWORD takes it",
                                    "nickname-taken", nick)
        else:
            refusal = replies.Error(f"nickname is taken: {nick} (it looks like {clash}, a registered nickname)",
                                    "nickname-taken", nick)
        self._hooks.tell(session, refusal)
        return True

    def _guest_name(self, session: ISession, nick: str) -> str | None:
        base = nick[: MAX_NICK_CHARS - 3] + "_"
        for number in range(1, 100):
            guest = f"{base}{number}"
            if self._roster.nickname_refusal(session, guest)[1] is None and self.registered.clash(guest, None) is None:
                return guest
        return None

    def identify(self, session: ISession, password: str, nick: str | None) -> None:
        """Identify (see commands.Identify)."""
        tell, member = self._hooks.tell, self._hooks.member(session)
        asked = self._asked.get(session)
        if nick is not None:
            account = self.registered.holder(nick)
            if account is None:
                tell(session, replies.Error(f"{nick} is not registered", "not-registered", nick))
                return
        elif member is None:
            if asked is None:
                tell(session, replies.Error("choose a nickname first", "not-logged-in"))
                return
            account = asked[0]
        else:
            found = self._wanted.get(session) or self.registered.holder(member.nick)
            if found is None:
                tell(session, replies.Error(f"{member.nick} is not registered: /register PASSWORD keeps it for you",
                                            "not-registered", member.nick))
                return
            account = found
        if self.identified.get(session) is account:
            tell(session, replies.Error(f"you are identified as {account.nick} already", "already-identified"))
            return
        self._check(session, account, password, lambda: self._identified(session, account))

    def _identified(self, session: ISession, account: Account) -> None:
        member = self._hooks.member(session)
        asked = self._asked.pop(session, None)
        if member is None:
            if asked is not None and asked[0] is account:
                self._hooks.log_in(session, asked[1])
            else:  # named up front (SASL): the login comes next
                self._hooks.tell(session, replies.Identified(account.nick))
            return
        self._wanted.pop(session, None)
        self._hooks.tell(session, replies.Identified(account.nick))
        if name_key(member.nick) != name_key(account.nick):
            refusal = self._roster.nickname_refusal(session, account.nick)[1]
            if refusal is not None:  # the owner is online already, on another connection
                self._hooks.tell(session, replies.Error(f"{account.nick} is online already, on another connection",
                                                        "nickname-taken", account.nick))
                return
            self._hooks.rename(member, account.nick)
        self._hooks.account_changed(member)
        self.welcome(member)

    # -- the password check, off the reactor's thread

    def _check(self, session: ISession, account: Account, password: str, then: Callable[[], None],
               otherwise: Callable[[], None] | None = None) -> None:
        """
        Check `password` for `account`: then `then()`; if it is wrong, the
        session is told, and `otherwise()` (if given) or asked again.
        """
        tell = self._hooks.tell
        if session in self._busy:
            tell(session, replies.Error("your password is being checked: wait for the answer", "busy"))
            return
        wait = self._failures.wait(session.address, self._clock.seconds())
        if wait:
            tell(session, replies.Error(f"too many wrong passwords from {session.address}: wait {math.ceil(wait)} s",
                                        "too-many-tries"))
            self._ask_again(session, account)
            return
        self._busy.add(session)
        checked = self._store().check_password(account.nick, same_everywhere(password))
        checked.addBoth(self._checked, session, account, then, otherwise)

    def _checked(self, result: bool | Failure, session: ISession, account: Account, then: Callable[[], None],
                 otherwise: Callable[[], None] | None) -> None:
        self._busy.discard(session)
        if session not in self._roster.present:
            return
        self._hooks.begin_turn()
        tell = self._hooks.tell
        if isinstance(result, Failure):
            tell(session, self._unavailable(result, f"checking {account.nick}'s password"))
            self._ask_again(session, account)
            return
        if self.registered.holder(account.nick) is not account:
            tell(session, replies.Error(f"{account.nick} is not registered any more", "not-registered", account.nick))
            self._asked.pop(session, None)
            return
        if not result:
            self._wrong(session, account, otherwise)
            return
        self._tries.pop(session, None)
        self.identified[session] = account
        log.info("{address} identified as {nick}", address=session.address, nick=account.nick)
        then()

    def _wrong(self, session: ISession, account: Account, otherwise: Callable[[], None] | None) -> None:
        self._failures.happened(session.address, self._clock.seconds())
        self.wrong_passwords += 1
        tries = self._tries[session] = self._tries.get(session, 0) + 1
        log.info("wrong password for {nick} from {address}", nick=account.nick, address=session.address)
        if tries >= MAX_TRIES:
            self._hooks.remove(session, replies.Error(f"wrong password {MAX_TRIES} times: goodbye", "too-many-tries"),
                               "Wrong password")
            return
        self._hooks.tell(session, replies.Error(f"wrong password for {account.nick}", "wrong-password", account.nick))
        if otherwise is not None:
            otherwise()
        else:
            self._ask_again(session, account)

    def _ask_again(self, session: ISession, account: Account) -> None:
        if session in self._asked:
            self._hooks.tell(session, replies.PasswordWanted(account.nick, MAX_TRIES - self._tries.get(session, 0)))

    def _when_answered(self, session: ISession, work: Deferred[Any], doing: str,
                       answer: Callable[[Any], replies.Reply]) -> None:
        """
        When the store's `work` answers, in a later turn: `answer(result)` is
        the reply, which `session` hears if it is still here; a failure is
        the line saying the store cannot answer now.
        """
        def answered(result: object) -> None:
            self._hooks.begin_turn()
            reply = self._unavailable(result, doing) if isinstance(result, Failure) else answer(result)
            if session in self._roster.present:
                self._hooks.tell(session, reply)

        work.addBoth(answered)

    def _unavailable(self, failure: Failure, doing: str) -> replies.Error:
        if failure.check(StoreUnavailable):
            return replies.Error(str(failure.value), "store-unavailable")
        log.failure("{doing} failed", failure, doing=doing)
        return replies.Error("the store cannot answer now: try again later", "store-unavailable")

    # -- what an identified user does

    def register(self, member: Member, password: str) -> None:
        session, nick, tell = member.session, member.nick, self._hooks.tell
        password = same_everywhere(password)
        account = self.registered.holder(nick)
        if account is not None:
            mine = self.identified.get(session) is account
            tell(session, replies.Error(f"you registered {nick} already" if mine else f"{nick} is registered already",
                                        "already-registered", nick))
            return
        weakness = password_weakness(password, nick)
        if weakness is not None:
            tell(session, replies.Error(weakness, "weak-password"))
            return
        if session in self._busy:
            tell(session, replies.Error("your password is being checked: wait for the answer", "busy"))
            return
        self._busy.add(session)

        def registered(result: object) -> None:
            self._busy.discard(session)
            self._hooks.begin_turn()
            if isinstance(result, Failure):
                if result.check(Taken):
                    answer = replies.Error(f"{nick} was registered by someone else a moment ago", "already-registered",
                                           nick)
                else:
                    answer = self._unavailable(result, f"registering {nick}")
                if session in self._roster.present:
                    tell(session, answer)
                return
            if self.registered.holder(nick) is None:
                account = Account(nick)
                self.registered.claim(nick, account)
                if session in self._roster.present:
                    self.identified[session] = account
                    if (member := self._hooks.member(session)) is not None:
                        self._hooks.account_changed(member)
            log.info("{nick} registered", nick=nick)
            if session in self._roster.present:
                tell(session, replies.Registered(nick))

        self._store().register(nick, password, self._clock.seconds()).addBoth(registered)

    def change_password(self, member: Member, old: str, new: str) -> None:
        session, tell = member.session, self._hooks.tell
        account = self._own_account(member, "/password")
        if account is None:
            return
        new = same_everywhere(new)
        weakness = password_weakness(new, account.nick)
        if weakness is not None:
            tell(session, replies.Error(weakness, "weak-password"))
            return

        def change() -> None:
            self._when_answered(session, self._store().change_password(account.nick, new), "changing a password",
                                lambda _: replies.PasswordChanged(account.nick))

        self._check(session, account, old, change)

    def unregister(self, member: Member, password: str) -> None:
        session = member.session
        account = self._own_account(member, "/unregister")
        if account is None:
            return

        def dropped(_: object) -> replies.Unregistered:
            self.forget(account.nick)
            log.info("{nick} unregistered", nick=account.nick)
            return replies.Unregistered(account.nick)

        self._check(session, account, password, lambda: self._when_answered(
            session, self._store().unregister(account.nick), f"unregistering {account.nick}", dropped))

    def forget(self, nick: str) -> None:
        """`nick` is not registered any more (unregistered, or expired): free it, and whoever identified with it."""
        account = self.registered.holder(nick)
        if account is None:
            return
        self.registered.release(account.nick, account)
        for holders in (self.identified, self._wanted):
            for session in [session for session, held in holders.items() if held is account]:
                del holders[session]
                if holders is self.identified and (member := self._hooks.member(session)) is not None:
                    self._hooks.account_changed(member)

    def _own_account(self, member: Member, command: str) -> Account | None:
        account = self.identified.get(member.session)
        if account is None:
            self._hooks.tell(member.session, replies.Error(
                f"{command} is for a registered nickname you have identified for", "not-identified"))
        return account

    # -- notes, mentions, coming and going

    def leave_note(self, member: Member, to_nick: str, text: str) -> bool:
        """
        A private message to `to_nick`, who is not online: kept for them if
        they are registered (True), and the sender told; False if not.
        """
        account = self.registered.holder(to_nick)
        if account is None:
            return False

        def kept(taken: object) -> replies.Reply:
            if taken:
                return replies.NoteKept(account.nick, text)
            return replies.Error(f"{account.nick} has {MAX_NOTES} messages waiting already: yours was not kept",
                                 "notes-full", account.nick)

        self._when_answered(member.session, self._store().leave_note(
            account.nick, Note(member.nick, text, self._clock.seconds())), f"keeping a message for {account.nick}", kept)
        return True

    def welcome(self, member: Member) -> None:
        """An identified member is in: the notes left for them, then how often they were named while away."""
        session = member.session
        account = self.identified.get(session)
        if account is None:
            return
        since = self._away_since[session] = account.left_at
        store, tell = self._store(), self._hooks.tell

        def notes(result: object) -> None:
            if isinstance(result, Failure):
                tell(session, self._unavailable(result, f"reading {account.nick}'s notes"))
            elif result:
                tell(session, replies.NotesWhileAway(tuple(result)))  # type: ignore[arg-type]

        def mentions(result: object) -> None:
            if isinstance(result, Failure):
                tell(session, self._unavailable(result, f"finding {account.nick}'s mentions"))
            elif result:
                counts = Counter(event.channel for event in result)  # type: ignore[attr-defined]
                tell(session, replies.MentionsWhileAway(tuple(counts.most_common())))

        def then(answer: Callable[[object], None]) -> Callable[[object], None]:
            def after(result: object) -> None:
                self._hooks.begin_turn()
                if self.identified.get(session) is account:
                    answer(result)
            return after

        def unread(result: object) -> None:
            if isinstance(result, Failure):
                log.failure("counting unread lines failed", result)
            elif result:
                tell(session, replies.Unread(tuple(result)))  # type: ignore[arg-type]

        store.take_notes(account.nick).addBoth(then(notes))
        if since is not None:
            store.mentions(account.nick, since).addBoth(then(mentions))
        store.unread(account.nick).addBoth(then(unread))

    def read(self, member: Member, channel: str) -> None:
        """An identified member has read `channel` up to now: kept, for their unread counts on any device."""
        account = self.identified.get(member.session)
        if account is not None and name_key(channel) in member.channels:
            self._store().mark_read(account.nick, channel, self._clock.seconds())

    def read_up_to(self, member: Member, target: str, at: float) -> None:
        """An identified member has read `target` up to `at` (IRCv3 read-marker): kept, as `read` keeps it."""
        account = self.identified.get(member.session)
        if account is not None:
            self._store().mark_read(account.nick, target, at)

    def mentions(self, member: Member) -> None:
        """/mentions: the lines that named an identified member since they last left."""
        session = member.session
        account = self._own_account(member, "/mentions")
        if account is None:
            return
        since = self._away_since.get(session)
        if since is None:
            self._hooks.tell(session, replies.MentionList(()))
            return

        self._when_answered(session, self._store().mentions(account.nick, since), "finding mentions",
                            lambda found: replies.MentionList(tuple(found)))

    def departed(self, session: ISession, logged_in: bool) -> None:
        """The session is gone: an identified owner who was in the chat left it now."""
        account = self.identified.pop(session, None)
        if account is not None and logged_in:
            account.left_at = self._clock.seconds()
            self._store().left(account.nick, account.left_at)
        self._asked.pop(session, None)
        self._wanted.pop(session, None)
        self._tries.pop(session, None)
        self._away_since.pop(session, None)
        self._busy.discard(session)
