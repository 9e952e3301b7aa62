"""The BalanceGateway: delivers committed changes to this process's sockets, once each and in ``seq`` order.

Every worker receives every ``balance:updates`` message and emits it only to the
sockets it holds itself (``ignore_queue``), so N workers never mean N copies. Each
socket remembers the last ``seq`` it was sent:

- a message at or below it is a repeat (the relay republished it) and is dropped;
- a message that skips ahead means something was lost or overtaken on the way (Redis
  was down, this worker's subscription dropped, a change left to the outbox relay was
  passed by the next one): the missing changes are replayed from the ledger first, so
  the socket still sees every ``balance_updated``, in order. The ledger has only the
  balance changes, so the socket is owed the rest of those messages
  (``transaction_completed``): if one arrives later (the relay republishes it, or it was
  merely overtaken) its other events are sent then, once;
- when the ledger cannot be read to fill a gap (the database restarting), the message
  is held: it is sent when the overtaken ones arrive, or when a retry (``fill_held``,
  every half second) can read the ledger, never out of order;
- until a new socket has been sent its snapshot, its messages wait in a buffer;
- a snapshot is never older than what the socket was already sent: when the cache
  lags behind (a failover to a replica that missed writes), the database answers.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import gevent

from .. import wire
from ..services import replay, snapshots
from ..domain.money import to_wire
from .messages import Message

log = logging.getLogger("BalanceGateway")

NAMESPACE = "/balance"


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


ADMINS_ROOM = "admins"


OWED_LIMIT = 1000
ORPHAN_GRACE = 10.0  # seconds a socket may take to finish connecting (its greeting waits at most 5)
GAP_LIMIT = 1000  # changes replayed to fill one gap (a longer gap's own seq is still checked against the ledger)
HELD_LIMIT = 1000  # messages held behind a gap the ledger could not fill; past it they go out in order, gap or not
IN_FLIGHT = 2.0  # seconds a committed change's message may take to reach a worker after the change's time
LEDGER_READ_TIMEOUT = 1.0  # seconds a gap fill's read (on the listener's path) may take; longer counts as a failure
# seconds a greeting's read may take: longer, since a reconnect storm (a deploy) can keep a busy worker from running
# the read's greenlet for a while, and a greeting given up on closes the socket (it reconnects: more storm)
GREETING_READ_TIMEOUT = 5.0
# get_current_balance per socket: a burst of ASK_BURST, then ASK_PER_SECOND. Each may replay up to the
# catch-up window from the database; unbounded, one socket queued thousands and held a worker for minutes.
ASK_BURST, ASK_PER_SECOND = 5, 1.0


@dataclass
class SocketState:
    user_id: int
    is_admin: bool
    last_seq: int | None = None
    buffer: list = field(default_factory=list)
    owed: set[int] = field(default_factory=set)  # seqs sent from the ledger, whose other events may still come
    held: dict = field(default_factory=dict)  # seq -> message waiting behind a gap the ledger could not fill yet
    lock: threading.RLock = field(default_factory=threading.RLock)
    expires_at: float | None = None  # when the token it connected with expires (epoch seconds)
    asks: float = ASK_BURST  # get_current_balance calls this socket may make right now
    asked_at: float = 0.0
    attached_at: float = field(default_factory=time.monotonic)
    attached_wall: float = field(default_factory=time.time)  # the same moment, to compare with a change's time

    def may_ask(self, now: float) -> bool:
        """A token bucket for ``get_current_balance``: ``ASK_BURST`` at once, then ``ASK_PER_SECOND``."""
        self.asks = min(ASK_BURST, self.asks + (now - self.asked_at) * ASK_PER_SECOND)
        self.asked_at = now
        if self.asks < 1:
            return False
        self.asks -= 1
        return True

    def filled(self, seq: int) -> None:
        self.owed.add(seq)
        if len(self.owed) > OWED_LIMIT:  # those never republished (published while this worker was not listening)
            self.owed.discard(min(self.owed))


class LedgerSlow(Exception):
    """The database did not answer a read in time (it hangs, or new connections to it do)."""


def bounded(seconds: float, read, *args, **kwargs):
    """``read(*args, **kwargs)``, given at most ``seconds``; ``LedgerSlow`` past it.

    One listener per worker delivers every user's changes, and it waits for a socket's lock
    while that lock's holder reads the database (a greeting, a gap being filled): a database
    that stops answering would stop every user's live updates on the worker, not only that
    socket's. Bounded, a read that hangs fails like one that errs (the message is held, the
    greeting tried again), and SQLAlchemy throws the interrupted connection away.
    """
    timeout = gevent.Timeout(seconds)
    timeout.start()
    try:
        return read(*args, **kwargs)
    except gevent.Timeout as exc:
        if exc is not timeout:
            raise
        raise LedgerSlow(f"no answer from the database within {seconds} s") from None
    finally:
        timeout.close()


class RecentIds:
    """A bounded set of message ids already delivered by this process."""

    def __init__(self, size: int = 10000):
        self.size = size
        self._ids: OrderedDict[int, None] = OrderedDict()

    def seen(self, message_id: int) -> bool:
        if message_id in self._ids:
            return True
        self._ids[message_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return False


class Gateway:
    def __init__(self, socketio, catchup_window: int, max_per_user: int = 50):
        self.socketio = socketio
        self.window = catchup_window
        self.max_per_user = max_per_user
        self.sockets: dict[str, SocketState] = {}
        self.by_user: dict[int, set[str]] = {}
        self.admins: set[str] = set()
        self.recent = RecentIds()
        self.holding: set[str] = set()  # sockets with held messages
        self.paused: str | None = None  # why this worker's sockets get no changes for now (its subscription is lost)
        self.stats = {"delivered": 0, "duplicates_dropped": 0, "gap_fills": 0, "invalid": 0,
                      "unknown_events_skipped": 0, "refused_over_user_limit": 0, "made_up_seq_drops": 0,
                      "held_behind_gap": 0}

    # -- sockets coming and going -------------------------------------------------------------

    def has_room_for(self, user_id: int) -> bool:
        """Whether this process may take another socket of ``user_id``: each costs memory and a share of every
        delivery, so one account (a script, a leaked token) cannot hold thousands of them."""
        return len(self.by_user.get(user_id, ())) < self.max_per_user

    def attach(self, sid: str, user_id: int, is_admin: bool, expires_at: float | None = None) -> None:
        self.sockets[sid] = SocketState(user_id, is_admin, expires_at=expires_at)
        self.by_user.setdefault(user_id, set()).add(sid)
        if is_admin:
            self.admins.add(sid)

    def expired(self, now: float) -> list[str]:
        """This process's sockets whose token has expired by ``now``."""
        return [sid for sid, state in list(self.sockets.items())
                if state.expires_at is not None and state.expires_at <= now]

    def orphaned(self, now: float, is_live, grace: float = ORPHAN_GRACE) -> list[str]:
        """Sockets attached more than ``grace`` seconds ago whose connection ``is_live`` says is gone.

        A connection that drops while its connect handler waits (on the database) gets no
        disconnect: python-socketio ignores a disconnect of a socket still connecting. Its
        state would then hold memory and one of its user's ``MAX_SOCKETS_PER_USER`` until
        its token expired.
        """
        return [sid for sid, state in list(self.sockets.items())
                if now - state.attached_at > grace and not is_live(sid)]

    def detach(self, sid: str) -> None:
        state = self.sockets.pop(sid, None)
        self.admins.discard(sid)
        self.holding.discard(sid)
        if state is not None:
            sids = self.by_user.get(state.user_id)
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self.by_user[state.user_id]

    def greet(self, sid: str, since_seq: int | None) -> dict | None:
        """Send the changes after ``since_seq`` (or, without one, after the last this socket was sent; within the
        window) then ``balance_initial``; return its payload.

        The snapshot is never older than what the socket was sent or says it has seen
        (``since_seq``): when the cache is behind either, the database answers. So a
        ``balance_initial`` is the truth as of its sending, and clients may take it as is,
        even when its ``seq`` is lower than theirs (theirs was then made up).
        """
        state = self.sockets.get(sid)
        if state is None:
            return None
        with state.lock:
            if self.sockets.get(sid) is not state:
                return None  # the socket left while this waited for its lock: nothing to read for it
            snap = bounded(GREETING_READ_TIMEOUT, snapshots.current, state.user_id)
            known = max(state.last_seq or 0, since_seq or 0)
            if snap.seq < known:
                snap = bounded(GREETING_READ_TIMEOUT, snapshots.from_database, state.user_id)  # cache behind
                snapshots.remember(snap)
                if snap.seq < known:  # not even the ledger has it: a publisher (or the client) made that seq up
                    log.warning("a socket of user %s has seen seq %s, the ledger is at %s: back to the ledger",
                                state.user_id, known, snap.seq)
            # From what the client says it has, or else from what this connection was sent: a get_current_balance
            # without a seq (the seed's refreshBalance) on a live socket would otherwise skip, as repeats, the
            # balance_updated of changes the snapshot got ahead of while their messages were on their way.
            start = since_seq if since_seq is not None else state.last_seq
            if start is not None and start < snap.seq and snap.seq - start <= self.window:
                for change in bounded(GREETING_READ_TIMEOUT, replay.changes_between, state.user_id, start, snap.seq,
                                      limit=self.window):
                    self.emit_to(sid, *wire.event(change))
            payload = {"balance": to_wire(snap.balance), "seq": snap.seq}
            self.emit_to(sid, "balance_initial", payload)
            before, state.last_seq = state.last_seq, snap.seq  # the truth, even below a made-up seq
            seen = before if before is not None else since_seq  # what the socket had before this greeting
            if seen is not None and seen < snap.seq <= seen + OWED_LIMIT:
                # The snapshot got ahead of messages still on their way to this socket (or waiting in its buffer):
                # when they come, their balance_updated is a repeat, but their other events (transaction_completed,
                # the admins' ...) are still owed.
                for seq in range(seen + 1, snap.seq + 1):
                    state.filled(seq)
            elif seen is None:
                # A socket with no seq of its own (the seed's hook sends none): what waits in its buffer was published
                # after it attached, so the snapshot's balance covers those changes and their other events are owed;
                # so are the latest change's, if it is recent enough for its message to be still on its way.
                for message in state.buffer:
                    if message.seq is not None and message.seq <= snap.seq:
                        state.filled(message.seq)
                changed_at = getattr(snap, "updated_at", None)
                if snap.seq and changed_at is not None and changed_at.timestamp() >= state.attached_wall - IN_FLIGHT:
                    state.filled(snap.seq)
            waiting, state.buffer = state.buffer, []
            for message in waiting:
                self._send(sid, state, message)
            if self.paused is not None:  # greeted with the truth, but nothing new will come for now: say so
                self._status(sid, {"live": False, "message": self.paused})
            return payload

    # -- whether changes reach this worker's sockets now ---------------------------------------

    def pause(self, why: str) -> None:
        """This worker lost its subscription: changes made meanwhile reach its sockets only once it is back (then
        they catch up from the outbox and the ledger). Its pages would otherwise say "Live" over a stale balance."""
        if self.paused is None:
            self.paused = why
            self._status(list(self.sockets), {"live": False, "message": why})

    def resume(self) -> None:
        """Subscribed again and caught up: changes flow again."""
        if self.paused is not None:
            self.paused = None
            self._status(list(self.sockets), {"live": True})

    def _status(self, to, data: dict) -> None:
        if to:
            self.socketio.emit("live_status", data, to=to, namespace=NAMESPACE, ignore_queue=True)

    # -- committed changes arriving ----------------------------------------------------------

    def deliver(self, message: Message) -> None:
        """Send a committed change to this process's sockets of its audience.

        Sockets that are exactly one change behind it (the usual case) get each event in
        one emit to all of them, so the packet is encoded once however many tabs the
        user has open; any other socket goes through ``_send`` on its own.
        """
        if message.id is not None and self.recent.seen(message.id):
            self.stats["duplicates_dropped"] += 1
            return
        if message.audience == "admins":
            self._to_admins(message.events)
            return
        self._to_user(message)
        self._to_admins(message.admin_events)

    def _to_admins(self, events) -> None:
        admins = list(self.admins)
        if admins:
            for name, data in events:
                self.emit_to(admins, name, data)

    def _to_user(self, message: Message) -> None:
        """Hold the locks of all the user's sockets (taken in sorted order, so two deliveries never wait on each
        other whatever order the set of sockets iterates in) while each gets the message."""
        in_step, held, reads = [], [], {}
        try:
            for sid in sorted(self.by_user.get(message.user_id, ())):
                state = self.sockets.get(sid)
                if state is None:
                    continue
                state.lock.acquire()
                held.append(state)
                if state.last_seq is None:
                    state.buffer.append(message)
                elif not state.held and (message.seq is None or message.seq == state.last_seq + 1):
                    if message.seq is not None:
                        state.last_seq = message.seq
                    in_step.append(sid)
                else:
                    self._send(sid, state, message, reads)
            if in_step:
                for name, data in message.events:
                    self.emit_to(in_step, name, data)
        finally:
            for state in held:
                state.lock.release()

    def resync(self) -> None:
        """After this worker may have missed messages: bring every socket up to the ledger's seq."""
        for sid, state in list(self.sockets.items()):
            with state.lock:
                if state.last_seq is None:
                    continue
                for change in bounded(LEDGER_READ_TIMEOUT, replay.changes_between, state.user_id, state.last_seq):
                    self.emit_to(sid, *wire.event(change))
                    state.last_seq = change.seq
                    state.filled(change.seq)
                    self.stats["gap_fills"] += 1
                self._release_held(sid, state)

    def fill_held(self) -> None:
        """Try again to fill the gaps that messages are held behind (the ledger could not be read when they came)."""
        reads = {}  # one read per gap of a user, however many of its sockets wait behind it
        for sid in list(self.holding):
            state = self.sockets.get(sid)
            if state is None:
                self.holding.discard(sid)
                continue
            with state.lock:
                first = min(state.held) if state.held else None
                if first is not None and first > state.last_seq + 1:
                    # the message stays held while its gap is read again (so a failure is logged as a repeat)
                    filled = self._fill_gap(sid, state, first, reads)
                    if filled is None:
                        continue
                    if not filled:  # made up: dropped, as it would have been when it came
                        del state.held[first]
                self._release_held(sid, state)

    def _send(self, sid: str, state: SocketState, message: Message, reads: dict | None = None) -> None:
        """Send one message to one socket, in seq order, then whatever was held behind the gap it closed.

        ``reads`` shares the ledger reads of one delivery among the sockets of its user."""
        self._send_one(sid, state, message, {} if reads is None else reads)
        if state.held or sid in self.holding:
            self._release_held(sid, state)

    def _release_held(self, sid: str, state: SocketState) -> None:
        while state.held and min(state.held) <= state.last_seq + 1:
            self._send_one(sid, state, state.held.pop(min(state.held)), {})
        if not state.held:
            self.holding.discard(sid)

    def _send_one(self, sid: str, state: SocketState, message: Message, reads: dict) -> None:
        if message.seq is not None:
            if message.seq <= state.last_seq:
                if message.seq in state.owed:  # its balance_updated came from the ledger: send the rest now
                    state.owed.discard(message.seq)
                    for name, data in message.events:
                        if name != "balance_updated":
                            self.emit_to(sid, name, data)
                    return
                self.stats["duplicates_dropped"] += 1
                return
            if message.seq > state.last_seq + 1:
                filled = self._fill_gap(sid, state, message.seq, reads)
                if filled is None:  # never send past a change the socket has not been sent: hold it
                    state.held[message.seq] = message
                    self.holding.add(sid)
                    self.stats["held_behind_gap"] += 1
                    if len(state.held) > HELD_LIMIT:  # the database stays away: give up the gap, send them in order
                        state.last_seq = min(state.held) - 1
                    return
                if not filled:
                    return
            state.last_seq = message.seq
        for name, data in message.events:
            self.emit_to(sid, name, data)

    def _fill_gap(self, sid: str, state: SocketState, seq: int, reads: dict) -> bool | None:
        """Send the changes between the socket's seq and ``seq`` from the ledger; False if ``seq`` is not real,
        None if the ledger could not be read (the caller holds the message until it can be).

        The message's own change is committed before it is published, so the ledger has
        it: if not, another publisher made that seq up, and taking it would make the
        socket drop the real changes up to it as repeats. The changes found are still sent.
        """
        self.stats["gap_fills"] += 1
        key = (state.user_id, state.last_seq, seq)
        if key not in reads:
            reads[key] = self._read_gap(state, seq)
        changes, real = reads[key]
        if changes is None:  # the database is the only way to fill the gap: the overtaken message or a retry will
            return None
        for change in changes:
            if change.seq < seq:
                self.emit_to(sid, *wire.event(change))
                state.filled(change.seq)
                state.last_seq = change.seq
        if not real:
            self.stats["made_up_seq_drops"] += 1
            log.warning("dropped a message for user %s with seq %s: the ledger has no such change", state.user_id, seq)
            return False
        return True

    def _read_gap(self, state: SocketState, seq: int) -> tuple[list | None, bool]:
        """The ledger's changes after the socket's seq up to ``seq``, and whether ``seq`` is real; (None, False) if
        the ledger could not be read (logged in full once per held stretch, then quietly)."""
        try:
            changes = bounded(LEDGER_READ_TIMEOUT, replay.changes_between, state.user_id, state.last_seq, seq,
                              limit=GAP_LIMIT)
        except Exception as exc:
            if state.held:
                log.debug("still could not replay seq %s..%s for a socket: %s", state.last_seq + 1, seq - 1, exc)
            else:
                log.exception("could not replay seq %s..%s for a socket", state.last_seq + 1, seq - 1)
            return None, False
        real = bool(changes) and changes[-1].seq == seq
        if not real and len(changes) == GAP_LIMIT:  # a gap longer than one replay: look for seq itself
            try:
                real = bounded(LEDGER_READ_TIMEOUT, replay.has_change, state.user_id, seq)
            except Exception:  # the page found is sent, then the message
                log.exception("could not look up seq %s for a socket", seq)
                real = True
        return changes, real

    def emit_to(self, to: str | list[str], event: str, data: dict) -> None:
        """Emit to one socket or a list of them (encoded once), on this process only (``ignore_queue``)."""
        self.stats["delivered"] += 1 if isinstance(to, str) else len(to)
        self.socketio.emit(event, data, to=to, namespace=NAMESPACE, ignore_queue=True)
