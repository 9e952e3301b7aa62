"""PostgreSQL stops answering without closing anything (frozen, or cut off by a partition): requests give up.

Its own bounds (``DATABASE_STATEMENT_TIMEOUT``, ``DATABASE_LOCK_TIMEOUT``) need a server that
runs. Here the connection goes through a proxy that stops passing bytes on, as a frozen
server or a dropped route does; each wait for an answer is then bounded by
``DATABASE_ANSWER_TIMEOUT``, the connection closed, and the request told to try again. When the
route is back the server rolls back whatever the cut-off transaction held.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from balance import database
from balance.extensions import db
from balance.services import wallet as wallet_service
from tests.support import databases
from tests.support.auth import AuthActions
from tests.support.proxy import StallProxy
from tests.support.wallets import assert_books_clean, balance, fund, new_admin, new_user, pay

BOUND = 1.0  # seconds: DATABASE_ANSWER_TIMEOUT under test
ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture
def proxy(postgres_uri):
    databases.empty_postgres(postgres_uri)
    url = make_url(postgres_uri)
    proxy = StallProxy(url.host or "127.0.0.1", url.port or 5432)
    yield proxy
    proxy.close()


def app_through(proxy: StallProxy, postgres_uri: str, **settings):
    url = make_url(postgres_uri).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    return databases.make_app(url, DATABASE_ANSWER_TIMEOUT=BOUND, DATABASE_LOCK_TIMEOUT=5, **settings)


def funded_user(proxy: StallProxy, postgres_uri: str):
    """An app through the proxy, and a user with 1000 in the wallet: (app, auth, the user's headers)."""
    app = app_through(proxy, postgres_uri)
    auth = AuthActions(app.test_client())
    _, admin = auth.new_admin()
    _, user = auth.new_user()
    auth.fund(user, admin, 1000)
    return app, auth, user


def dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_payment_to_a_database_that_went_silent_is_told_to_retry_within_the_bound_and_the_retry_pays_once(
        proxy, postgres_uri):
    app, auth, user = funded_user(proxy, postgres_uri)
    headers = {**user, "Idempotency-Key": "room-7"}

    proxy.freeze()
    started = time.monotonic()
    refused = auth.client.post("/transactions/payment", json={"amount": 300}, headers=headers)
    waited = time.monotonic() - started
    proxy.thaw()

    assert refused.status_code == 503, refused.get_json()
    error = refused.get_json()["error"]
    assert (error["code"], refused.headers["Retry-After"]) == ("database_unavailable", "1")
    assert "did not answer in time" in error["message"]
    assert BOUND <= waited < BOUND + 3, "one bounded wait, not a second one on a new connection"
    paid = auth.client.post("/transactions/payment", json={"amount": 300}, headers=headers)
    again = auth.client.post("/transactions/payment", json={"amount": 300}, headers=headers)
    assert (paid.status_code, again.status_code) == (201, 201)
    assert paid.get_json()["id"] == again.get_json()["id"]
    assert auth.client.get("/balance", headers=user).get_json()["balance"] == 700
    with app.app_context():
        assert_books_clean()
    dispose(app)


def test_a_change_cut_off_after_locking_its_wallet_is_rolled_back_and_lets_go_of_the_row(proxy, postgres_uri,
                                                                                         monkeypatch):
    app = app_through(proxy, postgres_uri)
    with app.app_context():
        admin, user = new_admin(), new_user()
        fund(user, admin, 1000)
        moved = wallet_service.move_wallet

        def move_then_go_silent(*args, **kwargs):
            applied = moved(*args, **kwargs)  # the wallet row is now locked by this transaction
            proxy.freeze()
            return applied

        monkeypatch.setattr(wallet_service, "move_wallet", move_then_go_silent)
        started = time.monotonic()
        with pytest.raises(OperationalError) as cut:
            pay(user, 300)
        assert BOUND <= time.monotonic() - started < BOUND + 3
        assert database.gave_up_waiting(cut.value) and "did not answer within 1 s" in str(cut.value)
        monkeypatch.undo()
        db.session.remove()
    proxy.thaw()  # the route is back: the server sees the closed connection and rolls back

    direct = databases.make_app(postgres_uri, DATABASE_LOCK_TIMEOUT=5)
    with direct.app_context():
        started = time.monotonic()
        pay(user, 200)  # the same wallet row: free again, long before the 5 s lock bound
        assert time.monotonic() - started < 3
        assert balance(user) == 800, "the cut-off payment of 300 never happened"
        assert_books_clean()
    dispose(direct)
    dispose(app)


def test_the_bound_is_lifted_for_work_exempt_from_the_statement_bound_and_back_for_the_next_transaction(
        postgres_uri):
    app = databases.make_app(postgres_uri, DATABASE_ANSWER_TIMEOUT=0.3, DATABASE_STATEMENT_TIMEOUT=0)
    longer = text("SELECT pg_sleep(0.6)")
    with app.app_context():
        with pytest.raises(OperationalError, match="did not answer within 0.3 s"):
            db.session.execute(longer)
        db.session.rollback()
        database.no_statement_timeout(db.session.connection())  # as ledger verify and migrations do
        db.session.execute(longer)  # waited past 0.3 s: exempt
        db.session.commit()  # the connection goes back to the pool, its bound restored
        with pytest.raises(OperationalError, match="did not answer within 0.3 s"):
            db.session.execute(longer)
        db.session.rollback()
    dispose(app)


def test_without_the_bound_a_slow_answer_is_waited_for(postgres_uri):
    app = databases.make_app(postgres_uri, DATABASE_ANSWER_TIMEOUT=0, DATABASE_STATEMENT_TIMEOUT=0)
    with app.app_context():
        assert db.session.execute(text("SELECT pg_sleep(0.4), 1")).one()[1] == 1
        db.session.rollback()
    dispose(app)


PING_UNDER_A_GREENLETS_TIMEOUT = textwrap.dedent("""
    from gevent import monkey; monkey.patch_all()
    import json, sys, time, gevent
    from sqlalchemy import create_engine, text
    from balance import database
    url = sys.argv[1]
    engine = create_engine(url, **database.engine_options(url, 30, 5))
    database.install_postgresql_hooks(engine, 30)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    time.sleep(database.PING_AFTER_IDLE + 0.2)  # idle: the next checkout pings it
    print("frozen?", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    try:
        with gevent.Timeout(0.5):
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        outcome = "answered"
    except gevent.Timeout:
        outcome = "Timeout"
    except Exception as exc:
        outcome = type(exc).__name__
    print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started}), flush=True)
""")


def test_a_greenlets_own_timeout_during_the_idle_ping_ends_the_wait_as_that_timeout(proxy, postgres_uri):
    """The gateway bounds its ledger reads with gevent timeouts (1 s, 5 s); a checkout's ping on a silent server
    must not turn one into a 5 s reconnect attempt ending in another error."""
    url = make_url(postgres_uri).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    with subprocess.Popen([sys.executable, "-c", PING_UNDER_A_GREENLETS_TIMEOUT, url], cwd=ROOT, text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout.readline().strip() == "frozen?"
            proxy.freeze()
            child.stdin.write("go\n")
            child.stdin.flush()
            said = json.loads(child.stdout.readline())
        finally:
            proxy.thaw()
            child.kill()
    assert said["outcome"] == "Timeout" and said["seconds"] < 2, said


def test_a_payment_whose_commit_was_made_but_whose_answer_was_lost_says_so_and_its_retry_does_not_pay_twice(
        proxy, postgres_uri):
    """'Try again' would pay twice: the answer lost after the COMMIT leaves the outcome unknown, and the same request
    (same key) is what finds it out."""
    app, auth, user = funded_user(proxy, postgres_uri)
    headers = {**user, "Idempotency-Key": "room-11"}

    proxy.freeze_after(b"COMMIT")
    lost = auth.client.post("/transactions/payment", json={"amount": 300}, headers=headers)
    proxy.thaw()
    again = auth.client.post("/transactions/payment", json={"amount": 300}, headers=headers)

    assert lost.status_code == 503 and lost.headers["Retry-After"] == "1"
    error = lost.get_json()["error"]
    assert (error["code"], error["outcome"]) == ("database_unavailable", "unknown")
    assert "may or may not have been made" in error["message"] and "same Idempotency-Key" in error["message"]
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true", "it had been made"
    assert auth.client.get("/balance", headers=user).get_json()["balance"] == 700
    with app.app_context():
        assert_books_clean()
    dispose(app)


def test_a_booking_whose_answer_was_lost_offers_its_own_form_again_and_sending_it_books_once(proxy, postgres_uri):
    app = app_through(proxy, postgres_uri)
    client = app.test_client()
    auth = AuthActions(client)
    _, admin = auth.new_admin()
    _, user = auth.new_user("guest@example.com")
    auth.fund(user, admin, 1000)
    html = {"Accept": "text/html"}
    token = re.compile(r'name="csrf_token" value="([^"]+)"')
    login = token.search(client.get("/login", headers=html).get_data(as_text=True)).group(1)
    client.post("/login", data={"email": "guest@example.com", "password": "password123", "csrf_token": login},
                headers=html)
    dashboard = client.get("/", headers=html).get_data(as_text=True)
    form = {"room": "garden-single", "csrf_token": token.search(dashboard).group(1),
            "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', dashboard).group(1)}

    proxy.freeze_after(b"COMMIT")
    lost = client.post("/book", data=form, headers=html)
    proxy.thaw()
    page = lost.get_data(as_text=True)
    card = page[page.index("error-card"):]  # (the header has a form too: logging out)
    resend = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', card))
    booked = client.post(re.search(r'<form method="post" action="([^"]+)"', card).group(1), data=resend,
                         headers=html, follow_redirects=True)

    assert lost.status_code == 503 and "Not confirmed" in page and "Send it again" in page
    assert "may or may not have gone through" in page and resend == form, "the same form, its key included"
    assert booked.status_code == 200 and "you were charged once" in booked.get_data(as_text=True)
    assert auth.client.get("/balance", headers=user).get_json()["balance"] == 1000 - 90
    with app.app_context():
        assert_books_clean()
    dispose(app)
