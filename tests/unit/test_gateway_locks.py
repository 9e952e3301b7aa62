"""The gateway's bookkeeping: locks (two deliveries to one user never wait on each other), owed events, gaps,
orphaned sockets."""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

import gevent
import pytest

from balance.realtime import gateway as gw
from balance.realtime.messages import Message


class SlowSocketIO:
    """Emits that take a moment, as a websocket write that yields does; records who got what."""

    def __init__(self):
        self.sent = []

    def emit(self, event, data, to=None, **_):
        time.sleep(0.02)
        self.sent.append((event, data.get("n"), tuple(to) if isinstance(to, list) else (to,)))


def two_sids_whose_set_order_flips_when_the_set_grows():
    while True:
        a, b = uuid.uuid4().hex, uuid.uuid4().hex
        more = [uuid.uuid4().hex for _ in range(6)]
        before = [s for s in {a, b}]
        after = [s for s in {a, b, *more} if s in (a, b)]
        if before != after:
            return a, b, more


def test_deliveries_racing_while_more_tabs_connect_both_finish(monkeypatch):
    # a gap fill's query, slow, finding the message's own change (what it fills in between is not this test's)
    monkeypatch.setattr(gw.replay, "changes_between",
                        lambda user_id, after, upto=None, **k: time.sleep(0.2) or [SimpleNamespace(seq=upto)])
    a, b, more = two_sids_whose_set_order_flips_when_the_set_grows()
    sio = SlowSocketIO()
    gateway = gw.Gateway(sio, 100)
    for sid in (a, b):
        gateway.attach(sid, 1, False)
        gateway.sockets[sid].last_seq = 1

    def deliver(message_id, seq):
        gateway.deliver(Message(message_id, "user", 1, seq, (("transaction_completed", {"n": message_id}),)))

    first = threading.Thread(target=deliver, args=(1, 3), daemon=True)
    first.start()
    time.sleep(0.05)  # the first delivery holds a lock while it fills the gap before seq 3
    for sid in more:  # more tabs connect meanwhile: the user's set of sockets grows and iterates in another order
        gateway.attach(sid, 1, False)
        gateway.sockets[sid].last_seq = 1
    second = threading.Thread(target=deliver, args=(2, 5), daemon=True)
    second.start()
    first.join(10)
    second.join(10)

    assert not first.is_alive() and not second.is_alive(), "the two deliveries wait on each other"
    for sid in (a, b):
        got = [n for event, n, to in sio.sent if sid in to]
        assert got == [1, 2], f"socket {sid} got {got}"


def test_a_greeting_queued_behind_its_sockets_lock_does_nothing_once_the_socket_has_left(monkeypatch):
    """Work a socket asked for but that waited while it disconnected reads nothing and sends nothing."""
    reads = []
    monkeypatch.setattr(gw.snapshots, "current", lambda user_id: reads.append(user_id))
    sio = SlowSocketIO()
    gateway = gw.Gateway(sio, 100)
    gateway.attach("gone", 1, False)
    state = gateway.sockets["gone"]
    answered = []
    with state.lock:  # a delivery to this socket is under way
        waiting = threading.Thread(target=lambda: answered.append(gateway.greet("gone", 0)), daemon=True)
        waiting.start()
        time.sleep(0.05)
        gateway.detach("gone")
    waiting.join(5)
    assert answered == [None] and reads == [] and sio.sent == []


def test_a_socket_may_ask_five_times_at_once_then_once_a_second():
    state = gw.SocketState(user_id=1, is_admin=False)
    assert [state.may_ask(100.0) for _ in range(6)] == [True] * 5 + [False]
    assert state.may_ask(100.5) is False and state.may_ask(101.1) is True and state.may_ask(101.2) is False
    assert [state.may_ask(200.0) for _ in range(6)] == [True] * 5 + [False], "a quiet socket gets its burst back"


def test_the_sockets_whose_token_has_expired_are_found_and_no_other():
    gateway = gw.Gateway(SlowSocketIO(), 100)
    gateway.attach("ended", 1, False, expires_at=100.0)
    gateway.attach("later", 1, False, expires_at=200.0)
    gateway.attach("no expiry", 2, True)
    assert gateway.expired(99.9) == []
    assert gateway.expired(100.0) == ["ended"]
    assert sorted(gateway.expired(500.0)) == ["ended", "later"]


class RecordingSocketIO:
    def __init__(self):
        self.sent = []

    def emit(self, event, data, to=None, **_):
        self.sent.append((event, data.get("seq", data.get("n"))))


def test_asking_for_the_balance_without_a_seq_on_a_live_socket_replays_what_the_snapshot_got_ahead_of(monkeypatch):
    """get_current_balance() (the seed's refreshBalance sends no seq) read seq 5 from the cache while the messages
    of 4 and 5 were still on their way to this worker: their balance_updated come from the ledger, once, in order,
    before the snapshot, and their other events when the messages come."""
    monkeypatch.setattr(gw.snapshots, "current", lambda user_id: SimpleNamespace(balance=500, seq=5))
    monkeypatch.setattr(gw.replay, "changes_between", lambda user_id, after, upto=None, **k: [
        SimpleNamespace(seq=seq) for seq in range(after + 1, upto + 1)])
    monkeypatch.setattr(gw.wire, "event", lambda change: ("balance_updated", {"seq": change.seq}))
    sio = RecordingSocketIO()
    gateway = gw.Gateway(sio, 100)
    gateway.attach("tab", 1, False)
    gateway.sockets["tab"].last_seq = 3

    gateway.greet("tab", None)
    for seq in (4, 5):
        gateway.deliver(Message(seq, "user", 1, seq, (("balance_updated", {"seq": seq}),
                                                      ("transaction_completed", {"n": f"completed {seq}"}))))
    gateway.deliver(Message(5, "user", 1, 5, (("balance_updated", {"seq": 5}),)))  # a repeat of a repeat: nothing

    assert sio.sent == [("balance_updated", 4), ("balance_updated", 5), ("balance_initial", 5),
                        ("transaction_completed", "completed 4"), ("transaction_completed", "completed 5")]


def test_a_message_whose_seq_the_ledger_lacks_is_dropped_after_the_real_changes_before_it_are_sent(monkeypatch):
    ledger = [SimpleNamespace(seq=2), SimpleNamespace(seq=3)]
    monkeypatch.setattr(gw.replay, "changes_between",
                        lambda user_id, after, upto=None, **k: [c for c in ledger if after < c.seq <= upto])
    monkeypatch.setattr(gw.wire, "event", lambda change: ("balance_updated", {"seq": change.seq}))
    sio = RecordingSocketIO()
    gateway = gw.Gateway(sio, 100)
    gateway.attach("tab", 1, False)
    gateway.sockets["tab"].last_seq = 1

    gateway.deliver(Message(None, "user", 1, 12, (("balance_updated", {"seq": 12}),)))  # made up
    assert sio.sent == [("balance_updated", 2), ("balance_updated", 3)]
    assert gateway.sockets["tab"].last_seq == 3 and gateway.stats["made_up_seq_drops"] == 1

    ledger.append(SimpleNamespace(seq=4))  # the next real change, committed then published
    gateway.deliver(Message(None, "user", 1, 4, (("balance_updated", {"seq": 4}),)))
    assert sio.sent[2:] == [("balance_updated", 4)]


@pytest.mark.parametrize("ledger_has_it, expected_last_seq, dropped", [
    (True, 12, 0),   # a real change after a long outage: the replayed page, then the message itself
    (False, 3, 1),   # a seq made up far ahead: the replayed page is sent, the message is not
    (ConnectionError("database unavailable"), 12, 0),  # the lookup failed: the page found, then the message
], ids=["real", "made-up", "lookup-failed"])
def test_a_gap_longer_than_one_replay_is_checked_against_the_ledger_too(monkeypatch, ledger_has_it, expected_last_seq,
                                                                         dropped):
    monkeypatch.setattr(gw, "GAP_LIMIT", 2)
    ledger = [SimpleNamespace(seq=2), SimpleNamespace(seq=3), SimpleNamespace(seq=4)]  # and on, up to 12 if real
    monkeypatch.setattr(gw.replay, "changes_between",
                        lambda user_id, after, upto=None, limit=1000: [c for c in ledger if after < c.seq <= upto][:limit])
    def has_change(user_id, seq):
        if isinstance(ledger_has_it, Exception):
            raise ledger_has_it
        return ledger_has_it

    monkeypatch.setattr(gw.replay, "has_change", has_change)
    monkeypatch.setattr(gw.wire, "event", lambda change: ("balance_updated", {"seq": change.seq}))
    sio = RecordingSocketIO()
    gateway = gw.Gateway(sio, 100)
    gateway.attach("tab", 1, False)
    gateway.sockets["tab"].last_seq = 1

    gateway.deliver(Message(None, "user", 1, 12, (("balance_updated", {"seq": 12}),)))

    assert sio.sent == [("balance_updated", 2), ("balance_updated", 3)] + ([("balance_updated", 12)] * (not dropped))
    assert gateway.sockets["tab"].last_seq == expected_last_seq and gateway.stats["made_up_seq_drops"] == dropped


def change(seq: int, message_id: int | None = None) -> Message:
    """A committed change's message: its balance_updated and its transaction_completed."""
    return Message(message_id or seq, "user", 1, seq, (("balance_updated", {"seq": seq}),
                                                       ("transaction_completed", {"n": f"completed {seq}"})))


class Ledger:
    """The ledger as the gateway reads it: down (every read fails) or up (it has every seq up to ``top``)."""

    def __init__(self, monkeypatch, top: int):
        self.top, self.up = top, False
        monkeypatch.setattr(gw.replay, "changes_between", self.changes_between)
        monkeypatch.setattr(gw.wire, "event", lambda change: ("balance_updated", {"seq": change.seq}))

    def changes_between(self, user_id, after, upto=None, **_):
        if not self.up:
            raise ConnectionError("database unavailable")
        return [SimpleNamespace(seq=seq) for seq in range(after + 1, min(upto or self.top, self.top) + 1)]


def tab_at(seq: int) -> tuple[gw.Gateway, RecordingSocketIO]:
    sio = RecordingSocketIO()
    gateway = gw.Gateway(sio, 100)
    gateway.attach("tab", 1, False)
    gateway.sockets["tab"].last_seq = seq
    return gateway, sio


def test_a_message_past_a_gap_the_ledger_cannot_fill_waits_for_the_change_it_overtook(monkeypatch):
    Ledger(monkeypatch, top=3)
    gateway, sio = tab_at(1)
    gateway.deliver(change(3))  # seq 2 was published by the other worker a moment later
    assert sio.sent == [], "never past a change the tab has not been sent"
    gateway.deliver(change(2))
    assert sio.sent == [("balance_updated", 2), ("transaction_completed", "completed 2"),
                        ("balance_updated", 3), ("transaction_completed", "completed 3")]
    assert gateway.sockets["tab"].last_seq == 3 and not gateway.holding


def test_a_message_held_behind_a_gap_goes_out_once_the_ledger_can_be_read_and_the_late_one_adds_only_the_rest(
        monkeypatch):
    ledger = Ledger(monkeypatch, top=4)
    gateway, sio = tab_at(1)
    gateway.deliver(change(3))
    gateway.deliver(change(4))
    gateway.fill_held()  # still down: nothing moves, nothing is lost
    assert sio.sent == [] and gateway.holding == {"tab"}
    ledger.up = True
    gateway.fill_held()
    assert sio.sent == [("balance_updated", 2), ("balance_updated", 3), ("transaction_completed", "completed 3"),
                        ("balance_updated", 4), ("transaction_completed", "completed 4")]
    assert not gateway.holding and gateway.sockets["tab"].held == {}
    gateway.deliver(change(2))  # the change the gap was: its balance_updated came from the ledger
    assert sio.sent[-1] == ("transaction_completed", "completed 2") and len(sio.sent) == 6


def test_a_socket_whose_database_stays_away_past_the_held_limit_gets_what_was_held_in_order(monkeypatch):
    Ledger(monkeypatch, top=10_000)
    monkeypatch.setattr(gw, "HELD_LIMIT", 3)
    gateway, sio = tab_at(1)
    for seq in (3, 4, 5):
        gateway.deliver(change(seq))
    assert sio.sent == []
    gateway.deliver(change(6))
    assert [seq for name, seq in sio.sent if name == "balance_updated"] == [3, 4, 5, 6], "only seq 2 is missing"
    assert gateway.sockets["tab"].last_seq == 6 and not gateway.holding


def test_a_socket_that_leaves_while_messages_are_held_is_forgotten(monkeypatch):
    Ledger(monkeypatch, top=3)
    gateway, sio = tab_at(1)
    gateway.deliver(change(3))
    gateway.detach("tab")
    gateway.fill_held()
    assert sio.sent == [] and not gateway.holding


def test_a_socket_greeted_without_a_seq_still_gets_the_other_events_of_a_change_that_came_while_it_connected(
        monkeypatch):
    """The seed's hook sends no since_seq: the snapshot covers the buffered change's balance, not its completion."""
    monkeypatch.setattr(gw.snapshots, "current", lambda user_id: SimpleNamespace(balance=500, seq=5))
    sio = RecordingSocketIO()
    gateway = gw.Gateway(sio, 100)
    gateway.attach("tab", 1, False)
    gateway.deliver(change(5))  # published between the connect and the greeting: buffered
    gateway.greet("tab", None)
    assert sio.sent == [("balance_initial", 5), ("transaction_completed", "completed 5")]


def test_a_socket_whose_connection_is_gone_is_orphaned_once_it_has_had_time_to_connect():
    gateway = gw.Gateway(RecordingSocketIO(), 100)
    for sid in ("live", "dropped while connecting", "just attached"):
        gateway.attach(sid, 1, False)
    gateway.sockets["live"].attached_at = gateway.sockets["dropped while connecting"].attached_at = 0.0
    gateway.sockets["just attached"].attached_at = 95.0
    assert gateway.orphaned(100.0, is_live=lambda sid: sid == "live") == ["dropped while connecting"]


def test_a_returning_socket_replayed_from_the_ledger_still_gets_the_other_events_of_messages_waiting_for_it(
        monkeypatch):
    """Messages that arrived while the socket was connecting wait in its buffer; the greeting replays their
    balance_updated from the ledger, and their other events follow once."""
    monkeypatch.setattr(gw.snapshots, "current", lambda user_id: SimpleNamespace(balance=700, seq=7))
    monkeypatch.setattr(gw.replay, "changes_between", lambda user_id, after, upto=None, **k: [
        SimpleNamespace(seq=seq) for seq in range(after + 1, upto + 1)])
    monkeypatch.setattr(gw.wire, "event", lambda change: ("balance_updated", {"seq": change.seq}))
    sio = RecordingSocketIO()
    gateway = gw.Gateway(sio, 100)
    gateway.attach("tab", 1, False)
    gateway.deliver(Message(7, "user", 1, 7, (("balance_updated", {"seq": 7}),
                                              ("transaction_completed", {"n": "completed 7"}))))  # buffered

    gateway.greet("tab", 5)

    assert sio.sent == [("balance_updated", 6), ("balance_updated", 7), ("balance_initial", 7),
                        ("transaction_completed", "completed 7")]


def test_a_ledger_read_that_hangs_holds_the_message_after_a_bound_and_is_made_once_for_all_the_users_tabs(
        monkeypatch):
    """One listener delivers every user's changes: a database that stops answering must not stop it for long."""
    monkeypatch.setattr(gw, "LEDGER_READ_TIMEOUT", 0.2)
    reads = []

    def hangs(*_, **__):
        reads.append(1)
        gevent.sleep(5)  # a cooperative wait, as psycopg's is under gevent

    monkeypatch.setattr(gw.replay, "changes_between", hangs)
    gateway, sio = tab_at(1)
    gateway.attach("second tab", 1, False)
    gateway.sockets["second tab"].last_seq = 1
    started = time.monotonic()
    gateway.deliver(change(3))
    assert time.monotonic() - started < 1.5
    assert reads == [1], "one read for the gap, shared by the user's two tabs"
    assert sio.sent == [] and gateway.holding == {"tab", "second tab"}


def test_a_stretch_the_ledger_stays_away_for_is_logged_in_full_once(monkeypatch, caplog):
    Ledger(monkeypatch, top=3)
    gateway, sio = tab_at(1)
    with caplog.at_level("DEBUG", logger="BalanceGateway"):
        gateway.deliver(change(3))
        for _ in range(3):
            gateway.fill_held()
    said = [r.levelname for r in caplog.records if "could not replay" in r.getMessage()]
    assert said == ["ERROR", "DEBUG", "DEBUG", "DEBUG"], "the traceback once, then a quiet line per retry"
    assert gateway.stats["held_behind_gap"] == 1 and gateway.sockets["tab"].held.keys() == {3}


def test_a_socket_greeted_without_a_seq_is_owed_the_completion_of_a_change_made_as_it_connected(monkeypatch):
    """The snapshot already counts the change; its message, a moment behind, still brings its transaction_completed."""
    now = datetime.now(timezone.utc)
    monkeypatch.setattr(gw.snapshots, "current", lambda user_id: SimpleNamespace(balance=500, seq=5, updated_at=now))
    sio = RecordingSocketIO()
    gateway = gw.Gateway(sio, 100)
    gateway.attach("tab", 1, False)
    gateway.greet("tab", None)
    gateway.deliver(change(5))  # arrives after the greeting
    assert sio.sent == [("balance_initial", 5), ("transaction_completed", "completed 5")]
    gateway.deliver(change(4, message_id=44))  # an older change republished: nothing owed for it
    assert len(sio.sent) == 2



class StatusRecorder:
    def __init__(self):
        self.sent = []

    def emit(self, event, data, to=None, **_):
        self.sent.append((event, data, tuple(to) if isinstance(to, list) else to))


def test_a_worker_that_lost_its_subscription_tells_its_sockets_updates_are_paused_and_when_they_flow_again(
        monkeypatch):
    monkeypatch.setattr(gw.snapshots, "current", lambda user_id: SimpleNamespace(balance=100, seq=0))
    sio = StatusRecorder()
    gateway = gw.Gateway(sio, 100)
    gateway.attach("a", 1, False)
    gateway.attach("b", 2, False)

    gateway.pause("live updates are paused")
    gateway.pause("again")  # said once per outage
    gateway.attach("c", 3, False)
    gateway.greet("c", None)  # a socket greeted meanwhile hears it too, after its balance
    gateway.resume()
    gateway.resume()

    assert sio.sent == [
        ("live_status", {"live": False, "message": "live updates are paused"}, ("a", "b")),
        ("balance_initial", {"balance": 1.0, "seq": 0}, "c"),
        ("live_status", {"live": False, "message": "live updates are paused"}, "c"),
        ("live_status", {"live": True}, ("a", "b", "c")),
    ]
