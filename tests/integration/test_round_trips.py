"""What a request costs PostgreSQL in round trips, read off libpq's own protocol trace; and what happens when connections die.

Under load every wait for the database is a chance for the worker's other greenlets
to run first, so the number of round trips, not the statements' time, is most of a
change's latency. These count them for real: psycopg's connection writes libpq's
trace of every message, and each round trip ends with the server's ``ReadyForQuery``.
"""
from __future__ import annotations

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import event
from sqlalchemy.engine import make_url

from balance import database
from balance.extensions import db
from tests.support import databases
from tests.support.auth import AuthActions


@pytest.fixture
def pg_app(postgres_uri):
    databases.empty_postgres(postgres_uri)
    app = databases.make_app(postgres_uri)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


class Trace:
    """libpq's protocol trace of every connection the app opens, one file for all."""

    def __init__(self, app, path):
        self.path = path
        self.file = open(path, "w")
        self.mark = 0
        self.traced = []
        with app.app_context():
            event.listen(db.engine, "connect", self._start)

    def _start(self, dbapi_conn, _record):
        dbapi_conn.pgconn.trace(self.file.fileno())
        dbapi_conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        self.traced.append(dbapi_conn)

    def _flush(self):
        """libpq buffers its trace; stopping it flushes, and it starts again at once."""
        for conn in self.traced:
            if not conn.closed:
                conn.pgconn.untrace()
                self._start(conn, None)
                self.traced.pop()

    def since_mark(self) -> list[str]:
        """The protocol messages traced since the last call, one string each (a query's newlines kept)."""
        self._flush()
        messages: list[str] = []
        with open(self.path) as f:
            for line in f.read().splitlines():
                if line.startswith(("F\t", "B\t")) or not messages:
                    messages.append(line)
                else:
                    messages[-1] += "\n" + line
        new, self.mark = messages[self.mark:], len(messages)
        return new


def round_trips(lines: list[str]) -> int:
    return sum(1 for line in lines if line.startswith("B\t") and "\tReadyForQuery\t" in line)


def until_commit(lines: list[str]) -> list[str]:
    """The change's own part of a request's trace: up to its COMMIT's answer.

    What follows in these tests is the publisher marking the outbox row published,
    which the served app batches off the request's path (``Publisher.mark_forever``).
    """
    ends = [i for i, line in enumerate(lines) if line.startswith("B\t") and 'CommandComplete\t "COMMIT"' in line]
    assert ends, "no COMMIT in:\n" + "\n".join(lines)
    return lines[:ends[0] + 2]  # COMMIT's CommandComplete, then ReadyForQuery


def queries(lines: list[str]) -> list[str]:
    return [line.split("\t", 3)[3] for line in lines if line.startswith("F\t") and "\tQuery\t" in line]


@pytest.fixture
def traced(pg_app, tmp_path, monkeypatch, request):
    """A client on PostgreSQL whose connections are traced, warmed up so psycopg has prepared what it prepares."""
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 3600.0)  # no idle pings: each is counted on its own below
    trace = Trace(pg_app, str(tmp_path / "libpq.trace"))
    request.addfinalizer(trace.file.close)
    auth = AuthActions(pg_app.test_client())
    _, admin = auth.new_admin()
    _, user = auth.new_user()
    for _ in range(6):  # psycopg prepares a statement on its 6th use: a round trip of its own, once
        auth.fund(user, admin, 10)
        assert auth.client.post("/transactions/payment", json={"amount": 1}, headers=user).status_code == 201
        auth.client.get("/balance", headers=user)
    trace.since_mark()
    return trace, auth, user, admin


def test_a_payment_costs_three_round_trips_the_caller_then_begin_with_the_wallet_then_the_rest_with_commit(traced):
    trace, auth, user, _ = traced
    reply = auth.client.post("/transactions/payment", json={"amount": 1}, headers=user)
    assert reply.status_code == 201, reply.get_json()
    lines = until_commit(trace.since_mark())
    sent = queries(lines)
    assert round_trips(lines) == 3, "\n".join(lines)
    assert sent[0].startswith(' "BEGIN;') and "UPDATE accounts" in sent[0], sent
    assert sent[1].rstrip('"').endswith("COMMIT") and "INSERT INTO postings" in sent[1], sent


def test_an_approval_costs_four_round_trips_begin_riding_with_the_claim(traced):
    trace, auth, user, admin = traced
    pending = auth.client.post("/transactions/topup", json={"amount": 5}, headers=user).get_json()
    trace.since_mark()
    reply = auth.client.patch(f"/transactions/topup/{pending['id']}/process", json={"status": "success"},
                              headers=admin)
    assert reply.status_code == 200, reply.get_json()
    lines = until_commit(trace.since_mark())
    sent = queries(lines)
    assert round_trips(lines) == 4, "\n".join(lines)
    assert sent[0].startswith(' "BEGIN;') and "UPDATE transactions" in sent[0], sent
    assert not any(q.strip(' "') in ("BEGIN", "COMMIT") for q in sent), "no BEGIN or COMMIT on its own"


def test_reading_the_balance_costs_the_caller_read_and_no_begin(traced):
    trace, auth, user, _ = traced
    assert auth.client.get("/balance", headers=user).status_code == 200
    lines = trace.since_mark()
    assert not any(q.strip(' "') == "BEGIN" for q in queries(lines)), "the caller's read opens no transaction"


def test_a_connection_idle_longer_than_the_limit_is_pinged_before_use(traced, monkeypatch):
    trace, auth, user, _ = traced
    assert auth.client.get("/balance", headers=user).status_code == 200
    used_a_moment_ago = trace.since_mark()
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 0.0)
    assert auth.client.get("/balance", headers=user).status_code == 200
    idle = trace.since_mark()
    assert round_trips(idle) == round_trips(used_a_moment_ago) + 1
    assert len(queries(idle)) == len(queries(used_a_moment_ago)) + 1, "the ping: an empty simple query"


def drop_every_connection(uri: str) -> int:
    """What a database restart does to the app's pooled connections: the server ends them."""
    url = make_url(uri)
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database,
                         autocommit=True) as admin:
        return admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]


@pytest.mark.parametrize("ping_after", [3600.0, 0.0], ids=["used-a-moment-ago", "idle"])
def test_after_the_database_drops_every_connection_the_next_request_still_succeeds(pg_app, postgres_uri, monkeypatch,
                                                                                  ping_after):
    monkeypatch.setattr(database, "PING_AFTER_IDLE", ping_after)
    auth = AuthActions(pg_app.test_client())
    _, admin = auth.new_admin()
    _, user = auth.new_user()
    auth.fund(user, admin, 3)
    assert drop_every_connection(postgres_uri) >= 1

    reply = auth.client.get("/balance", headers=user)  # no ping: the caller's read meets the dead connection
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["balance"] == 3
    assert auth.client.post("/transactions/payment", json={"amount": 1}, headers=user).status_code == 201


def test_an_unauthenticated_request_on_a_connection_dropped_a_moment_ago_is_told_to_try_again_and_then_works(
        pg_app, postgres_uri, monkeypatch):
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 3600.0)  # as if the database restarted within the last second
    auth = AuthActions(pg_app.test_client())
    assert auth.register("moment@example.com").status_code == 201
    drop_every_connection(postgres_uri)

    refused = auth.login("moment@example.com")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.get_json()["error"] == {"code": "database_unavailable",
                                           "message": "the database connection was lost; please try again"}
    assert auth.login("moment@example.com").status_code == 200, "the pool let go of the dead connections"


def test_an_unauthenticated_request_on_a_dropped_connection_that_sat_idle_succeeds(pg_app, postgres_uri, monkeypatch):
    auth = AuthActions(pg_app.test_client())
    reply = auth.register("idle@example.com")
    assert reply.status_code == 201
    drop_every_connection(postgres_uri)
    monkeypatch.setattr(database, "PING_AFTER_IDLE", 0.0)
    assert auth.login("idle@example.com").status_code == 200, "the ping found it dead and the pool opened another"


class Killed(BaseException):
    """What gevent raises in a greenlet it kills or times out: not an ``Exception``."""


def test_a_change_interrupted_while_its_batch_is_in_flight_leaves_no_lock_and_no_half_change(pg_app, monkeypatch):
    auth = AuthActions(pg_app.test_client())
    _, admin = auth.new_admin()
    _, user = auth.new_user()
    auth.fund(user, admin, 10)
    real_wait = psycopg.Connection.wait
    armed = []

    def interrupted_wait(self, gen, *args, **kwargs):
        if armed:
            armed.clear()
            next(gen)  # the query goes out: the server runs BEGIN and the wallet's UPDATE, and holds its row lock
            raise Killed
        return real_wait(self, gen, *args, **kwargs)

    real_execute = psycopg.ClientCursor.execute

    def arming_execute(self, query, *args, **kwargs):
        if isinstance(query, str) and query.startswith("BEGIN;") and "UPDATE accounts" in query:
            armed.append(True)
        return real_execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "wait", interrupted_wait)
    monkeypatch.setattr(psycopg.ClientCursor, "execute", arming_execute)
    with pytest.raises(Killed):  # the interruption itself propagates, not an error from cleaning up after it
        auth.client.post("/transactions/payment", json={"amount": 4}, headers=user)
    monkeypatch.undo()

    paid = auth.client.post("/transactions/payment", json={"amount": 1}, headers=user)  # same wallet row
    assert paid.status_code == 201, paid.get_json()
    assert auth.client.get("/balance", headers=user).get_json()["balance"] == 9, "the interrupted payment left nothing"


def test_a_pooled_connection_left_in_autocommit_is_never_handed_out(pg_app):
    """Defence in depth: whatever leaked autocommit into the pool, checkout discards that connection."""
    auth = AuthActions(pg_app.test_client())
    _, user = auth.new_user()
    leaked = []

    def leak(dbapi_conn, _record):  # runs after the app's own check-in hook, as a future bug would
        if dbapi_conn is not None and not leaked:
            dbapi_conn.autocommit = True
            leaked.append(dbapi_conn)

    with pg_app.app_context():
        event.listen(db.engine, "checkin", leak)
        with db.engine.connect():
            pass
        event.remove(db.engine, "checkin", leak)
        with db.engine.connect() as conn:
            handed_out = conn.connection.driver_connection
            assert handed_out is not leaked[0] and handed_out.autocommit is False
    assert leaked[0].closed, "the leaky connection was closed, not reused"
    assert auth.client.get("/balance", headers=user).status_code == 200


@pytest.mark.parametrize("path, method, body", [
    ("/auth/login", "POST", {"email": "a@example.com", "password": "password123"}),
    ("/auth/register", "POST", {"email": "a@example.com", "password": "password123"}),
], ids=["login", "register"])
def test_while_the_database_refuses_connections_requests_are_told_to_try_again_not_a_500(path, method, body):
    """PostgreSQL down or restarting: nothing listens on its port (port 1 here), every connect is refused."""
    app = databases.make_app("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    try:
        reply = app.test_client().open(path, method=method, json=body)
        assert reply.status_code == 503, reply.get_json()
        assert reply.get_json()["error"] == {"code": "database_unavailable",
                                             "message": "the database cannot be reached right now; please try again"}
        assert reply.headers["Retry-After"] == "1"
    finally:
        with app.app_context():
            db.engine.dispose()


def test_the_postgresql_pool_gives_up_on_a_database_that_does_not_answer_within_seconds():
    assert database.engine_options("postgresql+psycopg://h/d")["connect_args"]["connect_timeout"] <= 5
