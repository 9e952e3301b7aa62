"""A wallet row held elsewhere while its owner fires many payments: the pool stays free for everyone else.

Each waiting change of that wallet would hold a pool connection while it waits for the
row. With ``CALLER_WRITE_CONCURRENCY=2`` only two of the owner's eight concurrent payments
wait in the database and the other six wait in the worker without a connection, so with a
pool of eight (three for changes, ``READS_KEPT`` for the rest) another user still pays at
once, and the owner can still read. When the row is let go every payment is made, once.

Many accounts stuck at once take at most the worker's places for changes (all of the pool
but ``READS_KEPT``): the rest wait in the worker, and reads are still served.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg

from balance import database
from balance.caller_gate import READS_KEPT
from balance.extensions import db
from tests.support import databases
from tests.support.auth import AuthActions
from tests.support.locks import Holder
from tests.support.wallets import assert_books_clean

PAYMENTS = 8
PLACES = 2


def lock_waiters(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND datname = current_database()").fetchone()[0]


def waiting_in_the_database(url: str, at_least: int) -> int:
    """Once ``at_least`` requests wait on a lock, and the rest have had time to reach the database if they could:
    how many wait there."""
    deadline = time.monotonic() + 10
    while lock_waiters(url) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    return lock_waiters(url)


def test_one_accounts_stuck_payments_take_only_its_places_in_the_pool_and_other_users_are_served(postgres_uri):
    databases.empty_postgres(postgres_uri)
    pool = {**database.engine_options(postgres_uri, 60, 60), "pool_size": PLACES + 1 + READS_KEPT,
            "max_overflow": 0, "pool_timeout": 3}
    app = databases.make_app(postgres_uri, CALLER_WRITE_CONCURRENCY=PLACES, DATABASE_LOCK_TIMEOUT=60,
                             SQLALCHEMY_ENGINE_OPTIONS=pool)
    auth = AuthActions(app.test_client())
    _, admin = auth.new_admin()
    ann_id, ann = auth.new_user()
    _, bob = auth.new_user()
    auth.fund(ann, admin, 1000)
    auth.fund(bob, admin, 1000)
    plain = postgres_uri.replace("postgresql+psycopg://", "postgresql://")
    holder = Holder(postgres_uri, f"SELECT 1 FROM accounts WHERE user_id = {int(ann_id)} FOR UPDATE")

    def pay(amount: int):
        return app.test_client().post("/transactions/payment", json={"amount": amount},
                                      headers={**ann, "Idempotency-Key": f"room-{amount}"})

    with ThreadPoolExecutor(max_workers=PAYMENTS) as threads:
        try:
            answers = [threads.submit(pay, amount) for amount in range(1, PAYMENTS + 1)]
            waiting = waiting_in_the_database(plain, PLACES)
            started = time.monotonic()
            bobs = auth.client.post("/transactions/payment", json={"amount": 5}, headers=bob)
            anns_balance = auth.client.get("/balance", headers=ann)
            served_in = time.monotonic() - started
        finally:
            holder.release()
        paid = [answer.result(timeout=60) for answer in answers]

    assert waiting == PLACES, f"{waiting} of ann's payments waited for her row in the database"
    assert (bobs.status_code, anns_balance.status_code) == (201, 200)
    assert served_in < 2, f"bob and ann's read waited {served_in:.2f} s for a connection"
    assert anns_balance.get_json()["balance"] == 1000
    assert [p.status_code for p in paid] == [201] * PAYMENTS
    assert auth.client.get("/balance", headers=ann).get_json()["balance"] == 1000 - sum(range(1, PAYMENTS + 1))
    assert app.extensions["caller_gates"].in_flight() == 0
    with app.app_context():
        assert_books_clean()
        db.session.remove()
        db.engine.dispose()


def test_a_request_that_finds_no_free_connection_in_time_is_a_503_to_retry_not_a_500(postgres_uri):
    databases.empty_postgres(postgres_uri)
    pool = {**database.engine_options(postgres_uri), "pool_size": 1, "max_overflow": 0, "pool_timeout": 0.3}
    app = databases.make_app(postgres_uri, SQLALCHEMY_ENGINE_OPTIONS=pool)
    auth = AuthActions(app.test_client())
    _, ann = auth.new_user()
    with app.app_context():
        taken = db.engine.connect()  # the pool's only connection, as if a stuck request held it
        try:
            refused = auth.client.post("/transactions/payment", json={"amount": 1}, headers=ann)
        finally:
            taken.close()
        balance = auth.client.get("/balance", headers=ann).get_json()["balance"]
        db.session.remove()
        db.engine.dispose()
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.get_json()["error"] == {"code": "database_unavailable",
                                           "message": "the service is busy; please try again"}
    assert balance == 0


def test_many_accounts_stuck_at_once_take_only_the_workers_places_for_changes_and_reads_are_served(postgres_uri):
    databases.empty_postgres(postgres_uri)
    changes = 2
    pool = {**database.engine_options(postgres_uri, 60, 60), "pool_size": changes + READS_KEPT, "max_overflow": 0,
            "pool_timeout": 3}
    app = databases.make_app(postgres_uri, CALLER_WRITE_CONCURRENCY=1, DATABASE_LOCK_TIMEOUT=60,
                             SQLALCHEMY_ENGINE_OPTIONS=pool)
    auth = AuthActions(app.test_client())
    _, admin = auth.new_admin()
    stuck = [auth.new_user() for _ in range(4)]
    _, reader = auth.new_user()
    for _, headers in stuck:
        auth.fund(headers, admin, 100)
    plain = postgres_uri.replace("postgresql+psycopg://", "postgresql://")
    ids = ", ".join(str(int(user_id)) for user_id, _ in stuck)
    holder = Holder(postgres_uri, f"SELECT 1 FROM accounts WHERE user_id IN ({ids}) FOR UPDATE")

    def pay(headers):
        return app.test_client().post("/transactions/payment", json={"amount": 10},
                                      headers={**headers, "Idempotency-Key": "stuck-1"})

    with ThreadPoolExecutor(max_workers=len(stuck)) as threads:
        try:
            answers = [threads.submit(pay, headers) for _, headers in stuck]
            waiting = waiting_in_the_database(plain, changes)
            started = time.monotonic()
            reads = [auth.client.get("/balance", headers=reader).status_code for _ in range(3)]
            served_in = time.monotonic() - started
        finally:
            holder.release()
        paid = [answer.result(timeout=60) for answer in answers]

    assert waiting == changes, f"{waiting} stuck changes held connections; the worker lets changes have {changes}"
    assert reads == [200] * 3 and served_in < 2, f"reads waited {served_in:.2f} s for a connection"
    assert [p.status_code for p in paid] == [201] * len(stuck), "each went on once the rows were free"
    for _, headers in stuck:
        assert auth.client.get("/balance", headers=headers).get_json()["balance"] == 90
    with app.app_context():
        assert_books_clean()
        db.session.remove()
        db.engine.dispose()


def test_a_change_that_finds_every_place_for_changes_taken_past_the_bound_is_a_503_to_retry(postgres_uri):
    databases.empty_postgres(postgres_uri)
    app = databases.make_app(postgres_uri, DATABASE_LOCK_TIMEOUT=0.3)
    auth = AuthActions(app.test_client())
    _, ann = auth.new_user()
    places = app.extensions["writer_places"]
    taken = [places.enter() for _ in range(places.limit)]
    try:
        started = time.monotonic()
        refused = auth.client.post("/transactions/payment", json={"amount": 1}, headers=ann)
        waited = time.monotonic() - started
        read = auth.client.get("/balance", headers=ann)
    finally:
        for _ in taken:
            places.leave()
    assert places.limit == 25, "all of the default pool (10 + 20) but the connections kept for reads"
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1" and 0.3 <= waited < 3
    assert refused.get_json()["error"] == {"code": "service_busy",
                                           "message": "the service is busy with other changes; please try again"}
    assert read.status_code == 200
    assert auth.client.post("/transactions/payment", json={"amount": 1}, headers=ann).status_code == 402
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
