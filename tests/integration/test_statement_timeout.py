"""A wallet row held by a transaction that never ends: requests give up after the database's time bounds.

Without a bound, each request for that wallet waits, holding its pool connection, until
the row is free; meanwhile the worker's pool can run dry. Bounded (``DATABASE_LOCK_TIMEOUT``
for waiting on a lock, ``DATABASE_STATEMENT_TIMEOUT`` for any statement), they are told
to try again (503), and the same request succeeds, once, when the row is free. The
whole-book work (migrations, ``ledger verify``) is exempt from the statement bound.
"""
from __future__ import annotations

import threading
import time

import pytest
from flask_migrate import upgrade

from balance import database
from balance.extensions import db
from balance.services import ledger_store
from tests.support import databases
from tests.support.auth import AuthActions
from tests.support.locks import Holder
from tests.support.wallets import assert_books_clean

BOUND = 0.5  # seconds: the bound under test (the other one is left far above it)


def app_with(postgres_uri, **settings):
    databases.empty_postgres(postgres_uri)
    return databases.make_app(postgres_uri, **settings)


@pytest.fixture
def timed_app(postgres_uri):
    app = app_with(postgres_uri, DATABASE_STATEMENT_TIMEOUT=BOUND, DATABASE_LOCK_TIMEOUT=60)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("settings", [
    {"DATABASE_LOCK_TIMEOUT": BOUND, "DATABASE_STATEMENT_TIMEOUT": 60},
    {"DATABASE_STATEMENT_TIMEOUT": BOUND, "DATABASE_LOCK_TIMEOUT": 60},
], ids=["lock-timeout", "statement-timeout"])
def test_a_payment_on_a_wallet_locked_elsewhere_is_told_to_retry_and_the_retry_pays_once(postgres_uri, settings):
    app = app_with(postgres_uri, **settings)
    auth = AuthActions(app.test_client())
    _, admin = auth.new_admin()
    user_id, user = auth.new_user()
    auth.fund(user, admin, 1000)
    holder = Holder(postgres_uri, f"SELECT 1 FROM accounts WHERE user_id = {int(user_id)} FOR UPDATE")
    headers = {**user, "Idempotency-Key": "room-42"}
    try:
        started = time.monotonic()
        refused = auth.client.post("/transactions/payment", json={"amount": 300}, headers=headers)
        waited = time.monotonic() - started
        assert auth.client.get("/balance", headers=user).get_json()["balance"] == 1000
    finally:
        holder.release()

    assert refused.status_code == 503, refused.get_json()
    assert refused.get_json()["error"]["code"] == "database_unavailable" and refused.headers["Retry-After"] == "1"
    assert "did not answer in time" in refused.get_json()["error"]["message"]
    assert BOUND <= waited < 10, "it waited for the row up to the bound under test (the other is 60 s)"
    paid = auth.client.post("/transactions/payment", json={"amount": 300}, headers=headers)
    again = auth.client.post("/transactions/payment", json={"amount": 300}, headers=headers)
    assert (paid.status_code, again.status_code) == (201, 201)
    assert paid.get_json()["id"] == again.get_json()["id"], "the retry of the retry is the same payment"
    assert auth.client.get("/balance", headers=user).get_json()["balance"] == 700
    with app.app_context():
        assert_books_clean()
        db.session.remove()
        db.engine.dispose()


def waiting_out(holder: Holder, work) -> None:
    """Run ``work`` while ``holder`` keeps its lock past the statement bound; it must wait, then finish."""
    releaser = threading.Thread(target=holder.release_once_someone_has_waited, args=(3 * BOUND,), daemon=True)
    releaser.start()
    started = time.monotonic()
    try:
        work()
    finally:
        holder.released.set()
        releaser.join(30)
    assert time.monotonic() - started >= 3 * BOUND, "the lock was let go before the work had waited past the bound"


def test_ledger_verify_waits_out_a_lock_longer_than_the_statement_timeout(timed_app, postgres_uri):
    holder = Holder(postgres_uri, "LOCK TABLE postings IN ACCESS EXCLUSIVE MODE")
    with timed_app.app_context():
        reports = []
        waiting_out(holder, lambda: reports.append(ledger_store.verify()))
        db.session.rollback()
    assert reports[0].clean


def test_migrations_wait_out_a_lock_longer_than_the_statement_timeout(timed_app, postgres_uri):
    holder = Holder(postgres_uri, "LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
    with timed_app.app_context():
        waiting_out(holder, upgrade)  # already at head: it still reads the version table, under the lock


def test_without_the_exemption_the_same_read_gives_up_at_the_bound(timed_app, postgres_uri):
    """What the two tests above would meet: the bound applies to this app's connections."""
    holder = Holder(postgres_uri, "LOCK TABLE postings IN ACCESS EXCLUSIVE MODE")
    try:
        with timed_app.app_context(), pytest.raises(Exception, match="statement timeout"):
            db.session.execute(db.text("SELECT count(*) FROM postings")).scalar()
    finally:
        holder.release()


@pytest.mark.parametrize("url, pgoptions, statement, lock, options", [
    ("postgresql+psycopg://h/d", None, 30, 5,
     "-c statement_timeout=30000 -c lock_timeout=5000 -c idle_in_transaction_session_timeout=60000"),
    ("postgresql+psycopg://h/d", None, 0.25, 0,
     "-c statement_timeout=250 -c idle_in_transaction_session_timeout=60000"),
    ("postgresql+psycopg://h/d?options=-c%20search_path%3Dbooking", None, 2, 0,
     "-c search_path=booking -c statement_timeout=2000 -c idle_in_transaction_session_timeout=60000"),
    ("postgresql+psycopg://h/d", "-c search_path=booking", 0, 1, "-c search_path=booking -c lock_timeout=1000"),
    ("postgresql+psycopg://h/d?options=-c%20work_mem%3D8MB", "-c search_path=elsewhere", 2, 0,
     "-c work_mem=8MB -c statement_timeout=2000 -c idle_in_transaction_session_timeout=60000"),
    # (the URL's options win over PGOPTIONS, as in libpq)
    ("postgresql+psycopg://h/d", "-c search_path=booking", 0, 0, None),  # libpq itself reads PGOPTIONS then
], ids=["defaults", "fraction", "kept-url-options", "kept-pgoptions", "url-over-pgoptions", "off"])
def test_the_bounds_are_startup_options_that_keep_what_the_url_or_environment_ask_for(monkeypatch, url, pgoptions,
                                                                                      statement, lock, options):
    if pgoptions is None:
        monkeypatch.delenv("PGOPTIONS", raising=False)
    else:
        monkeypatch.setenv("PGOPTIONS", pgoptions)
    assert database.engine_options(url, statement, lock)["connect_args"].get("options") == options


@pytest.mark.parametrize("args, table, said", [
    (["ledger", "verify"], "postings", "could not read the books: canceling statement due to lock timeout"),
    (["db", "upgrade"], "alembic_version", "migrations not applied: canceling statement due to lock timeout"),
], ids=["ledger-verify", "db-upgrade"])
def test_a_command_behind_a_lock_past_the_lock_bound_stops_and_says_so_in_a_line(postgres_uri, args, table, said):
    app = app_with(postgres_uri, DATABASE_LOCK_TIMEOUT=BOUND, DATABASE_STATEMENT_TIMEOUT=60)
    holder = Holder(postgres_uri, f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    try:
        result = app.test_cli_runner().invoke(args=args)
    finally:
        holder.release()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    assert result.exit_code == 1
    assert said in result.output, result.output
    assert "Traceback" not in result.output


def test_a_session_left_idle_inside_a_transaction_is_ended_by_the_server_after_a_minute(postgres_uri):
    """A transaction whose connection was cut off (a partition: its close never arrives) would hold its row locks
    until TCP noticed, hours later; none of the app's sits idle in a transaction for anything like a minute."""
    app = databases.make_app(postgres_uri)
    with app.app_context():
        assert db.session.execute(db.text("SHOW idle_in_transaction_session_timeout")).scalar() == "1min"
        db.session.rollback()
        db.session.remove()
        db.engine.dispose()
