"""The ``/balance`` gateway through Flask-SocketIO's test client: one process, SQLite, no Redis, no message queue.

The same contract as the multi-worker tests, at the speed of a unit test: the
greeting, ``get_current_balance`` and its acknowledgement, catch-up and its window,
bad client input, refused tokens, and in-process delivery of a change made over HTTP.
"""
from __future__ import annotations

import time

import pytest
from flask_jwt_extended import create_refresh_token
from sqlalchemy.exc import OperationalError

from balance.extensions import db, socketio
from balance.realtime import gateway as gateway_module
from balance.realtime import sockets as sockets_module
from tests.support import databases, wallets
from tests.support.auth import AuthActions

NS = "/balance"
SEED_BALANCE_UPDATE = {"newBalance", "previousBalance", "transactionId", "transactionType", "amount", "timestamp",
                       "seq"}


@pytest.fixture
def make_app(sqlite_template_path, tmp_path):
    apps = []

    def make(**overrides):
        uri = databases.copy_sqlite(sqlite_template_path, str(tmp_path / f"gateway{len(apps)}.sqlite3"))
        app = databases.make_app(uri, **overrides)
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth(client):
    return AuthActions(client)


class Tab:
    """A test-client socket that keeps everything it received, since the greeting is sent from a background task."""

    def __init__(self, app, client, token: str | None, **kw):
        auth = {"token": token, **kw} if token is not None else None
        self.sock = socketio.test_client(app, namespace=NS, auth=auth, flask_test_client=client)
        self.events: list[tuple[str, object]] = []

    @property
    def connected(self) -> bool:
        return self.sock.is_connected(NS)

    def collect(self) -> list:
        for packet in self.sock.get_received(NS):
            self.events.append((packet["name"], packet["args"][0] if packet["args"] else None))
        return self.events

    def until(self, condition, what: str, timeout: float = 5.0) -> list:
        deadline = time.monotonic() + timeout
        while not condition(self.collect()):
            assert time.monotonic() < deadline, f"{what} not received within {timeout}s: {self.events}"
            time.sleep(0.01)
        return self.events

    def greeted(self) -> list:
        return self.until(lambda events: any(name == "balance_initial" for name, _ in events), "balance_initial")

    def ask(self, *args):
        return self.sock.emit("get_current_balance", *args, callback=True, namespace=NS)

    def close(self) -> None:
        if self.connected:
            self.sock.disconnect(NS)


@pytest.fixture
def tabs(app, client):
    opened = []

    def open_tab(token, **kw) -> Tab:
        tab = Tab(app, client, token, **kw)
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        tab.close()


def token_of(headers: dict) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def test_a_socket_is_greeted_with_its_balance_and_seq_on_connect(auth, tabs):
    _, user = auth.new_user()
    _, admin = auth.new_admin()
    auth.fund(user, admin, 50)
    tab = tabs(token_of(user))
    assert tab.connected
    assert tab.greeted() == [("balance_initial", {"balance": 50, "seq": 1})]


def test_get_current_balance_acknowledges_with_the_snapshot_and_sends_balance_initial(auth, tabs):
    _, user = auth.new_user()
    _, admin = auth.new_admin()
    auth.fund(user, admin, 12.5)
    tab = tabs(token_of(user))
    tab.greeted()
    assert tab.ask() == {"balance": 12.5, "seq": 1}
    tab.until(lambda events: len(events) == 2, "the second balance_initial")
    assert tab.events[1] == ("balance_initial", {"balance": 12.5, "seq": 1})


def test_get_current_balance_with_since_seq_replays_the_changes_after_it_then_the_snapshot(auth, tabs):
    _, user = auth.new_user()
    _, admin = auth.new_admin()
    for amount in (1, 2, 3):
        auth.fund(user, admin, amount)
    tab = tabs(token_of(user))
    tab.greeted()
    assert tab.ask({"since_seq": 1}) == {"balance": 6, "seq": 3}
    events = tab.until(lambda events: len(events) == 4, "two replayed changes and the snapshot")
    assert [name for name, _ in events[1:]] == ["balance_updated", "balance_updated", "balance_initial"]
    assert [(e["seq"], e["previousBalance"], e["newBalance"]) for _, e in events[1:3]] == [(2, 1, 3), (3, 3, 6)]
    assert set(events[1][1]) == SEED_BALANCE_UPDATE


def test_connecting_with_since_seq_gets_the_missed_changes_before_the_greeting(auth, tabs):
    _, user = auth.new_user()
    _, admin = auth.new_admin()
    for amount in (5, 6, 7):
        auth.fund(user, admin, amount)
    tab = tabs(token_of(user), since_seq=1)
    events = tab.greeted()
    assert [(name, data.get("seq")) for name, data in events] == [
        ("balance_updated", 2), ("balance_updated", 3), ("balance_initial", 3)]


def test_past_the_catch_up_window_a_returning_socket_gets_only_the_snapshot(make_app):
    app = make_app(CATCHUP_WINDOW=2)
    client = app.test_client()
    auth = AuthActions(client)
    _, user = auth.new_user()
    _, admin = auth.new_admin()
    for amount in (1, 1, 1):
        auth.fund(user, admin, amount)
    tab = Tab(app, client, token_of(user), since_seq=0)
    try:
        assert tab.greeted() == [("balance_initial", {"balance": 3, "seq": 3})]
        assert tab.ask({"since_seq": 1}) == {"balance": 3, "seq": 3}
        assert [name for name, _ in tab.until(lambda e: len(e) == 4, "replay within the window")] == [
            "balance_initial", "balance_updated", "balance_updated", "balance_initial"]
    finally:
        tab.close()


def test_a_window_larger_than_one_ledger_page_replays_every_change_in_it(make_app):
    """The replay is not cut at the ledger read's default page (1,000) when the window is wider."""
    app = make_app(CATCHUP_WINDOW=1_200)
    client = app.test_client()
    with app.app_context():
        user, admin = wallets.new_user("many@example.com"), wallets.new_admin()
        wallets.fund(user, admin, 10_000)
        for _ in range(1_100):
            wallets.pay(user, 1)
    token = client.post("/auth/login", json={"email": "many@example.com", "password": "password123"}
                        ).get_json()["access_token"]
    tab = Tab(app, client, token, since_seq=1)
    try:
        events = tab.until(lambda e: any(name == "balance_initial" for name, _ in e), "the greeting", timeout=60)
        assert [data["seq"] for name, data in events if name == "balance_updated"] == list(range(2, 1_102))
        assert events[-1] == ("balance_initial", {"balance": 89, "seq": 1_101})  # $100.00 less 1,100 cents
    finally:
        tab.close()


@pytest.mark.parametrize("bad", [-1, "soon", 2.5, True, [3], {"since_seq": -4}, "\u0663", "9" * 5000],
                         ids=["-1", "soon", "2.5", "True", "[3]", "negative in a dict", "an Arabic-Indic digit",
                              "5,000 digits"])
def test_a_bad_since_seq_gets_an_error_event_and_an_error_ack(auth, tabs, bad):
    _, user = auth.new_user()
    tab = tabs(token_of(user))
    tab.greeted()
    ack = tab.ask(bad)
    assert ack["error"]["message"] == "since_seq must be a whole number >= 0"
    events = tab.until(lambda events: len(events) == 2, "the error event")
    assert events[1] == ("error", ack["error"])
    assert tab.connected and tab.ask() == {"balance": 0, "seq": 0}


@pytest.mark.parametrize("bad", [-1, "soon", 2.5, True, "\u0663"], ids=["-1", "soon", "2.5", "True", "an Arabic digit"])
def test_a_bad_since_seq_at_connect_is_said_in_an_error_event_and_the_socket_still_gets_the_snapshot(auth, tabs, bad):
    _, user = auth.new_user()
    _, admin = auth.new_admin()
    auth.fund(user, admin, 7)
    tab = tabs(token_of(user), since_seq=bad)
    assert tab.greeted() == [
        ("error", {"message": "since_seq must be a whole number >= 0: nothing replayed, here is the current balance"}),
        ("balance_initial", {"balance": 7, "seq": 1})]
    assert tab.connected


def test_a_since_seq_ahead_of_the_ledger_gets_just_the_snapshot_whose_lower_seq_is_the_truth(auth, tabs):
    _, user = auth.new_user()
    _, admin = auth.new_admin()
    auth.fund(user, admin, 7)
    tab = tabs(token_of(user), since_seq=999)
    assert tab.greeted() == [("balance_initial", {"balance": 7, "seq": 1})]
    auth.fund(user, admin, 1)
    events = tab.until(lambda events: any(name == "balance_updated" for name, _ in events), "the next change")
    assert [data["seq"] for name, data in events if name == "balance_updated"] == [2]


def test_a_socket_asking_for_its_balance_over_and_over_is_refused_beyond_five_at_once_then_one_a_second(
        auth, tabs):
    """Each ask may replay up to the catch-up window from the database: a flood of them once held a worker for
    minutes. The socket stays connected and is answered again a second later."""
    _, user = auth.new_user()
    tab = tabs(token_of(user))
    tab.greeted()
    answers = [tab.ask({"since_seq": 0}) for _ in range(8)]
    assert answers[:5] == [{"balance": 0, "seq": 0}] * 5
    refusal = {"message": "too many get_current_balance calls: at most 5 at once, then 1 a second"}
    assert answers[5:] == [{"error": refusal}] * 3
    time.sleep(1.1)
    assert tab.connected and tab.ask() == {"balance": 0, "seq": 0}


def refresh_token_for(app, user_id: int) -> str:
    with app.app_context():
        return create_refresh_token(identity=str(user_id))


@pytest.mark.parametrize("make_token", [
    lambda app, uid, token: None,
    lambda app, uid, token: "",
    lambda app, uid, token: "garbage",
    lambda app, uid, token: token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"),
    lambda app, uid, token: refresh_token_for(app, uid),
], ids=["no token", "empty", "garbage", "tampered signature", "refresh token"])
def test_a_socket_with_a_missing_or_invalid_token_is_not_connected(app, auth, tabs, make_token):
    user_id, user = auth.new_user()
    tab = tabs(make_token(app, user_id, token_of(user)))
    assert not tab.connected
    assert app.extensions["balance.gateway"].sockets == {}, "a refused socket must not be attached to a user"


def test_a_user_gets_at_most_max_sockets_per_user_and_a_closed_one_makes_room_for_another(make_app):
    app = make_app(MAX_SOCKETS_PER_USER=2)
    client = app.test_client()
    auth = AuthActions(client)
    _, user = auth.new_user()
    _, other = auth.new_user()
    gateway = app.extensions["balance.gateway"]
    first, second = Tab(app, client, token_of(user)), Tab(app, client, token_of(user))
    third = Tab(app, client, token_of(user))
    others = Tab(app, client, token_of(other))
    try:
        assert (first.connected, second.connected, third.connected) == (True, True, False)
        assert others.connected, "another user's sockets do not count against this user's"
        assert gateway.stats["refused_over_user_limit"] == 1
        assert sorted(len(sids) for sids in gateway.by_user.values()) == [1, 2]
        first.close()
        fourth = Tab(app, client, token_of(user))
        assert fourth.connected and fourth.greeted() == [("balance_initial", {"balance": 0, "seq": 0})]
        fourth.close()
    finally:
        for tab in (first, second, third, others):
            tab.close()


def test_an_approval_over_http_reaches_the_users_socket_in_process_and_no_other_users(auth, client, tabs):
    _, user = auth.new_user()
    _, other = auth.new_user()
    _, admin = auth.new_admin()
    mine, theirs, admins = tabs(token_of(user)), tabs(token_of(other)), tabs(token_of(admin))
    for tab in (mine, theirs, admins):
        tab.greeted()

    approved = auth.fund(user, admin, 20)

    events = mine.until(lambda events: len(events) == 4, "the request, the change and its completion")
    assert [name for name, _ in events] == ["balance_initial", "transaction_created", "balance_updated",
                                            "transaction_completed"]
    del events[1]  # the request's own event (its payload: tests/e2e/test_fanout.py)
    assert events[1][1] | {"timestamp": None} == {
        "newBalance": 20, "previousBalance": 0, "transactionId": approved["id"], "transactionType": "topup",
        "amount": 20, "seq": 1, "timestamp": None}
    admins.until(lambda events: len(events) == 3, "the admins' queue events")
    assert [name for name, _ in admins.events] == ["balance_initial", "topup_requested", "topup_processed"]

    short = client.post("/transactions/payment", json={"amount": 30}, headers=user)
    assert short.status_code == 402
    events = mine.until(lambda events: len(events) == 5, "the refused payment")
    assert [name for name, _ in events[3:]] == ["transaction_failed", "balance_insufficient"]
    assert events[4][1] | {"timestamp": None} == {
        "transactionId": short.get_json()["error"]["transaction"]["id"], "requiredAmount": 30,
        "currentBalance": 20, "shortfall": 10, "timestamp": None}

    assert theirs.collect() == [("balance_initial", {"balance": 0, "seq": 0})]


@pytest.mark.parametrize("event", ["foo", "join", "message", "get_balance", "connect", "disconnect"])
def test_an_event_the_namespace_does_not_take_gets_an_error_event_and_an_error_ack(auth, tabs, event):
    _, user = auth.new_user()
    tab = tabs(token_of(user))
    tab.greeted()
    ack = tab.sock.emit(event, {"room": "admins"}, callback=True, namespace=NS)
    assert ack == {"error": {"message": f"unknown event {event!r}: this namespace takes get_current_balance"}}
    events = tab.until(lambda events: len(events) == 2, "the error event")
    assert events[1] == ("error", ack["error"])
    assert tab.connected and tab.ask() == {"balance": 0, "seq": 0}


@pytest.mark.parametrize("event", [7, ""], ids=["a number", "empty"])
def test_an_event_whose_name_is_not_a_name_gets_an_error_event_and_an_error_ack(auth, tabs, event):
    _, user = auth.new_user()
    tab = tabs(token_of(user))
    tab.greeted()
    ack = tab.sock.emit(event, 123, callback=True, namespace=NS)
    assert ack == {"error": {"message": f"unknown event {str(event)!r}: this namespace takes get_current_balance"}}
    events = tab.until(lambda events: len(events) == 2, "the error event")
    assert events[1] == ("error", ack["error"])
    assert tab.connected and tab.ask() == {"balance": 0, "seq": 0}


def test_asking_for_the_balance_with_more_than_one_argument_gets_an_error_event_and_an_error_ack(auth, tabs):
    _, user = auth.new_user()
    tab = tabs(token_of(user))
    tab.greeted()
    ack = tab.ask(3, 4)
    assert ack == {"error": {"message": "get_current_balance takes at most one argument ({since_seq} or a number), "
                                        "not 2"}}
    events = tab.until(lambda events: len(events) == 2, "the error event")
    assert events[1] == ("error", ack["error"])
    assert tab.connected and tab.ask() == {"balance": 0, "seq": 0}


def database_gone(*_, **__):
    raise OperationalError("SELECT ...", {}, Exception("server closed the connection unexpectedly"))


def test_a_connect_whose_login_cannot_be_checked_is_refused_not_left_unanswered(app, auth, tabs, monkeypatch):
    """A database blip while the connect handler reads the user: the client is told (connect_error) and may
    connect again; left unanswered, socket.io-client waited forever."""
    _, user = auth.new_user()
    monkeypatch.setattr(sockets_module, "authenticate", database_gone)
    tab = tabs(token_of(user))
    assert not tab.connected
    assert app.extensions["balance.gateway"].sockets == {}


def test_a_greeting_whose_read_fails_is_tried_again_and_the_socket_is_greeted(app, auth, tabs, monkeypatch):
    _, user = auth.new_user()
    _, admin = auth.new_admin()
    auth.fund(user, admin, 4)
    real, reads = gateway_module.snapshots.current, []

    def fails_once(user_id):
        reads.append(user_id)
        return database_gone() if len(reads) == 1 else real(user_id)

    monkeypatch.setattr(gateway_module.snapshots, "current", fails_once)
    tab = tabs(token_of(user))
    assert tab.greeted() == [("balance_initial", {"balance": 4, "seq": 1})]
    assert len(reads) == 2


def test_a_socket_that_cannot_be_greeted_after_its_tries_is_closed_so_that_it_connects_again(
        app, auth, tabs, monkeypatch):
    _, user = auth.new_user()
    monkeypatch.setattr(gateway_module.snapshots, "current", database_gone)
    tab = tabs(token_of(user))
    assert tab.connected, "connected first: its login was checked"
    deadline = time.monotonic() + 10
    while tab.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not tab.connected, "closed after its tries (0.5 + 1 + 2 s apart)"
    assert app.extensions["balance.gateway"].sockets == {}
