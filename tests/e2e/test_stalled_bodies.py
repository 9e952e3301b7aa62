"""A client that sends a change's headers and then stalls holds nothing the account or the server needs.

The body is read before the caller is looked up, so a stalled (or slow) upload holds only
its own greenlet: not one of the account's places (``CALLER_WRITE_CONCURRENCY``) and not a
pool connection. Before, three stalled payments took an account's two places until the
client gave up, and its real payments were refused with 503 ``account_busy``; enough of
them over a few accounts took the whole pool.
"""
from __future__ import annotations

import socket
import time

import pytest

from tests.e2e.servers import BalanceServer, deploy, server_env

pytestmark = pytest.mark.multiprocess

STALLED = 3


@pytest.fixture(scope="module")
def one_worker(fresh_database, tmp_path_factory):
    database_url = fresh_database("stalled")
    env = server_env(database_url, None, workers=1, CALLER_WRITE_CONCURRENCY="2", DATABASE_LOCK_TIMEOUT="2")
    server = BalanceServer.gunicorn(env, tmp_path_factory.mktemp("stalled") / "gunicorn.log", workers=1)
    try:
        yield deploy(server, None, database_url)
    finally:
        server.stop()


def stalled_payment(port: int, token: str) -> socket.socket:
    """A payment whose headers promise a body that never comes."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.sendall((f"POST /transactions/payment HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: 100\r\n\r\n").encode())
    return conn


def test_payments_whose_bodies_never_come_take_none_of_the_accounts_places(one_worker):
    api, admin = one_worker.api, one_worker.admin
    ann = api.new_user("ann")
    api.top_up(ann, admin, 10)
    stalled = [stalled_payment(one_worker.server.port, ann.token) for _ in range(STALLED)]
    try:
        time.sleep(0.5)  # they have reached the app, and would have taken her two places there
        started = time.monotonic()
        paid = api.pay(ann, 1)
        took = time.monotonic() - started
        assert api.balance(ann)["balance"] == 9
    finally:
        for conn in stalled:
            conn.close()
    assert paid["status"] == "success"
    assert took < 1.5, f"her payment waited {took:.2f} s behind payments that never sent their bodies"
