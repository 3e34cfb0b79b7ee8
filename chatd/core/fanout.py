"""
Fan-out: each event to the members it is for, once per turn, in order.
The hot path.

    broadcast(event, audience) -> recorded (history, the bus's outgoing, observers)
      -> pending until the turn ends (chatd.core.turn), or out at once without one
      -> publish: this node's events to the bus, then one Batch of the turn's
         events, each member's Share (their channels' events, less their own)
         in one delivery; members with the same view share one Share

Order is kept here: before anything else reaches a member (a reply, a
private message, a change of their channels, their departure) what waits
for them is delivered first (`catch_up`), and a member who joins a channel
mid-turn gets only what comes after.  A delivery that fails is that
member's alone: it is logged, the member dropped, and the rest go on.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

from chatd.core.batch import Batch, Runs, Share, from_index, without
from chatd.core.bus import IBus
from chatd.core.store import IStore, NoStore
from chatd.core.channel import Channel, Member
from chatd.core.events import BusEvent, Crowd, Event
from chatd.core.roster import Roster
from chatd.core.session import ISession
from chatd.core.turn import Turn

log = Logger()

# Who an event is for: the members of one channel (its key), or of any of
# several (a user's leaving or renaming reaches everyone who shares a
# channel with them).
Audience = str | frozenset[str]
Pending = list[tuple[Event, Audience, ISession | None]]


class FanOut:
    """The turn's events on their way to this node's members and to the bus."""

    def __init__(self, roster: Roster, turn: Turn | None, bus: Callable[[], IBus],
                 observers: list[Callable[[Event], None]], drop: Callable[[ISession], None],
                 store: Callable[[], IStore] = NoStore) -> None:
        self._roster = roster
        self._turn = turn
        self._bus = bus  # the server's bus, as it is now (a cluster's is given after the server is made)
        self._store = store  # the server's store, as it is now
        self._observers = observers  # told every event: the transcript
        self._drop_session = drop  # a member whose delivery failed: the server makes it leave
        # Events waiting to be delivered: (event, audience, the member it is not for).
        self._pending: Pending = []
        # Members whose share of _pending starts later than its start: caught up or joined since.
        self._caught_up: dict[ISession, int] = {}
        # This node's events for the bus, in the order they happened: every one
        # but the summaries (each node makes its own), quiet joins included.
        self._outgoing: list[BusEvent] = []
        self._publishing = False
        self.drops = 0  # sessions dropped for a failed delivery, ever
        self.deliveries = 0  # a turn's share delivered to one member, for /metrics

    # -- events

    def broadcast(self, event: Event, audience: Audience, exclude: ISession | None = None,
                  channel: Channel | None = None) -> None:
        """
        Record `event` (in `channel`'s history, if given) and deliver it to
        the members of `audience` here but `exclude`; an event of this node
        also goes on to the bus.
        """
        self.record(event, channel)
        if audience:
            self._pending.append((event, audience, exclude))
        turn = self._turn
        if turn is None or not turn.held:  # no turn to wait for the end of: out at once (read inline: every line)
            self.publish()

    def send_on(self, event: BusEvent) -> None:
        """`event` for the bus only: for other nodes to act on."""
        self._outgoing.append(event)
        turn = self._turn
        if turn is None or not turn.held:
            self.publish()

    def record(self, event: Event, channel: Channel | None) -> None:
        if channel is not None:
            channel.history.record(event)
        if not event.origin and type(event) is not Crowd:
            self._outgoing.append(event)
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                log.failure("recording {event} failed", event=event)

    def joined_mid_turn(self, session: ISession) -> None:
        """`session` has just come: what was said before in this turn is not for it."""
        self._caught_up[session] = len(self._pending)

    # -- order

    def catch_up(self, session: ISession) -> None:
        """Deliver to `session` now what waits for it, so what comes next reaches it in order."""
        member = self._roster.members.get(session)
        if member is None:
            return
        pending = self._pending
        start, end = self._caught_up.get(session, 0), len(pending)
        if start < end:
            self._caught_up[session] = end  # first: a failing delivery drops the member, who is then caught up
            own = [index for index in range(start, end) if pending[index][2] is session]
            runs = without(_runs_for(pending, member.view[0], start), own)
            if runs:
                self.deliver(member, Share(Batch([event for event, _, _ in pending]), runs, member.view[1]))

    def caught_up_with(self, member: Member) -> bool:
        """Catch `member` up; False if that failed and the member is gone."""
        self.catch_up(member.session)
        return self._roster.members.get(member.session) is member

    # -- out

    def publish(self) -> None:
        """
        Hand this node's events to the bus and the store, then deliver the
        events that wait, each member's in one delivery.  The bus first: the
        other nodes' users then get them while this node's are being served.
        """
        if self._publishing:
            return  # the loop below gets to what was added meanwhile
        self._publishing = True
        try:
            while self._pending or self._outgoing:
                if self._outgoing:
                    outgoing, self._outgoing = self._outgoing, []
                    self._bus().publish(outgoing)
                    self._store().record(outgoing)
                if self._pending:
                    pending, caught_up = self._pending, self._caught_up
                    self._pending, self._caught_up = [], {}
                    self._fan_out(pending, caught_up)
        finally:
            self._publishing = False

    def _fan_out(self, pending: Pending, caught_up: dict[ISession, int]) -> None:
        batch = Batch([event for event, _, _ in pending])
        touched: set[str] = set()
        sent_by: dict[ISession, list[int]] = {}
        for index, (_, audience, sender) in enumerate(pending):
            if isinstance(audience, str):
                touched.add(audience)
            else:
                touched.update(audience)
            if sender is not None:
                sent_by.setdefault(sender, []).append(index)
        channels, lobbies = self._roster.channels, self._roster.lobbies
        recipients: list[Member] = []
        for key in touched:
            channel = channels.get(key) or lobbies.get(key)
            if channel is not None:
                recipients.extend(channel.members.values())
        if len(touched) > 1:  # a member of several of them gets one share
            recipients = list({id(member): member for member in recipients}.values())
        # One share per view, for every member with that view who neither
        # sent any of these events nor joined or caught up during the turn.
        shares: dict[tuple[frozenset[str], str | None], Share] = {}
        members, drops = self._roster.members, self.drops
        for member in recipients:
            session = member.session
            # A member dropped by a failed delivery earlier in this loop is skipped.
            if self.drops != drops and members.get(session) is not member:
                continue
            view = member.view
            share = shares.get(view)
            if share is None:
                share = shares[view] = Share(batch, _runs_for(pending, view[0], 0), view[1])
            if session in sent_by or (caught_up and session in caught_up):
                runs = without(from_index(share.runs, caught_up.get(session, 0)), sent_by.get(session, []))
                share = Share(batch, runs, view[1])
            if share.runs:
                self.deliver(member, share)

    def deliver(self, member: Member, share: Share) -> None:
        """
        Deliver to a member other than the one whose command is being
        handled: if that fails, the failure is that member's alone, so it is
        logged and that member dropped, and the caller goes on.
        """
        self.deliveries += 1
        try:
            member.session.deliver(share)
        except Exception:
            self._failed(member)

    def send(self, member: Member, *answers: object) -> None:
        """Replies to a member other than the one whose command is being handled, as `deliver`."""
        try:
            member.session.send(answers)
        except Exception:
            self._failed(member)

    def _failed(self, member: Member) -> None:
        """A delivery to `member` raised (called in its `except`): log it and drop the member."""
        log.failure("delivery to {nick} failed; dropping the connection", nick=member.nick)
        self._drop(member.session)

    def _drop(self, session: ISession) -> None:
        self.drops += 1
        try:
            session.disconnect("delivery failed")
        except Exception:
            log.failure("disconnecting a session failed")
        self._drop_session(session)


def _runs_for(pending: Pending, channels: frozenset[str], start: int) -> Runs:
    """The [from, to) runs of pending[start:] whose audience includes a member of `channels`."""
    runs: Runs = []
    run_start = -1
    for index in range(start, len(pending)):
        audience = pending[index][1]
        if audience in channels if isinstance(audience, str) else not audience.isdisjoint(channels):
            if run_start < 0:
                run_start = index
        elif run_start >= 0:
            runs.append((run_start, index))
            run_start = -1
    if run_start >= 0:
        runs.append((run_start, len(pending)))
    return runs
