"""A wallet row held by a transaction that never ends: requests give up after ``DATABASE_STATEMENT_TIMEOUT``.

Without a bound, each request for that wallet waits, holding its pool connection, until
the pool runs dry and the worker answers nobody. With it, they are told to try again
(503, nothing changed), and the same request succeeds once the row is free. The
whole-book work (migrations, ``ledger verify``) is exempt.
"""
from __future__ import annotations

import threading
import time

import psycopg
import pytest
from flask_migrate import upgrade

from balance import database
from balance.extensions import db
from balance.services import ledger_store
from tests.support import databases
from tests.support.auth import AuthActions
from tests.support.wallets import assert_books_clean

TIMEOUT = 0.5


@pytest.fixture
def timed_app(postgres_uri):
    databases.empty_postgres(postgres_uri)
    app = databases.make_app(postgres_uri, DATABASE_STATEMENT_TIMEOUT=TIMEOUT)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def plain(uri: str) -> str:
    return uri.replace("postgresql+psycopg://", "postgresql://")


def hold(uri: str, sql: str, seconds: float) -> threading.Thread:
    """Run ``sql`` in a transaction of its own and keep it open ``seconds`` (what a forgotten psql session does)."""
    taken = threading.Event()

    def run():
        with psycopg.connect(plain(uri)) as conn:
            conn.execute(sql)
            taken.set()
            time.sleep(seconds)
            conn.rollback()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert taken.wait(10)
    return thread


def test_a_payment_on_a_wallet_locked_elsewhere_is_told_to_retry_and_the_retry_pays_once(timed_app, postgres_uri):
    auth = AuthActions(timed_app.test_client())
    _, admin = auth.new_admin()
    user_id, user = auth.new_user()
    auth.fund(user, admin, 1000)
    holder = hold(postgres_uri, f"SELECT 1 FROM accounts WHERE user_id = {int(user_id)} FOR UPDATE", 5)
    headers = {**user, "Idempotency-Key": "room-42"}

    started = time.monotonic()
    refused = auth.client.post("/transactions/payment", json={"amount": 300}, headers=headers)
    waited = time.monotonic() - started

    assert refused.status_code == 503, refused.get_json()
    assert refused.get_json()["error"]["code"] == "database_unavailable" and refused.headers["Retry-After"] == "1"
    assert "did not answer in time; nothing was changed" in refused.get_json()["error"]["message"]
    assert TIMEOUT <= waited < 4, "it gave up at the timeout, not when the lock was let go"
    assert auth.client.get("/balance", headers=user).get_json()["balance"] == 1000
    holder.join(10)

    paid = auth.client.post("/transactions/payment", json={"amount": 300}, headers=headers)
    again = auth.client.post("/transactions/payment", json={"amount": 300}, headers=headers)
    assert (paid.status_code, again.status_code) == (201, 201)
    assert paid.get_json()["id"] == again.get_json()["id"], "the retry of the retry is the same payment"
    assert auth.client.get("/balance", headers=user).get_json()["balance"] == 700
    with timed_app.app_context():
        assert_books_clean()


def test_ledger_verify_waits_out_a_lock_longer_than_the_statement_timeout(timed_app, postgres_uri):
    holder = hold(postgres_uri, "LOCK TABLE postings IN ACCESS EXCLUSIVE MODE", 3 * TIMEOUT)
    with timed_app.app_context():
        report = ledger_store.verify()
        db.session.rollback()
    holder.join(10)
    assert report.clean


def test_migrations_wait_out_a_lock_longer_than_the_statement_timeout(timed_app, postgres_uri):
    holder = hold(postgres_uri, "LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE", 3 * TIMEOUT)
    with timed_app.app_context():
        upgrade()  # already at head: it still reads the version table, under the lock
    holder.join(10)


def test_without_the_exemption_the_same_read_gives_up(timed_app, postgres_uri):
    """What the two tests above would meet: the timeout does apply to this app's connections."""
    holder = hold(postgres_uri, "LOCK TABLE postings IN ACCESS EXCLUSIVE MODE", 3 * TIMEOUT)
    with timed_app.app_context(), pytest.raises(Exception, match="statement timeout"):
        db.session.execute(db.text("SELECT count(*) FROM postings")).scalar()
    holder.join(10)


@pytest.mark.parametrize("url, seconds, options", [
    ("postgresql+psycopg://h/d", 30, "-c statement_timeout=30000"),
    ("postgresql+psycopg://h/d", 0.25, "-c statement_timeout=250"),
    ("postgresql+psycopg://h/d?options=-c%20search_path%3Dbooking", 2, "-c search_path=booking -c statement_timeout=2000"),
    ("postgresql+psycopg://h/d", 0, None),
], ids=["default", "fraction", "kept-url-options", "off"])
def test_the_timeout_is_a_startup_option_that_keeps_what_the_url_asks_for(url, seconds, options):
    assert database.engine_options(url, seconds)["connect_args"].get("options") == options
