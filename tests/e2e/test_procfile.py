"""The Procfile's ``web:`` line, run as a platform runs it: it serves long-polling only when it runs one worker.

Polling needs every request of a session to reach the same worker, so with several
workers behind one port the server must be websocket-only (clients then learn at
once that they must use ``transports: ['websocket']``, instead of connecting and
dropping in a loop). With ``WEB_CONCURRENCY`` unset the Procfile runs one worker, so
the seed's hook works unchanged against a default deployment.
"""
from __future__ import annotations

import pytest
import requests

from tests.e2e.servers import BIN, SUBSCRIBED, BalanceServer, server_env

pytestmark = pytest.mark.multiprocess

POLLING_HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


@pytest.mark.parametrize(("settings", "workers", "polling"), [
    ({}, 1, True),
    ({"WEB_CONCURRENCY": "1"}, 1, True),
    ({"WEB_CONCURRENCY": "3"}, 3, False),
], ids=["unset: the Procfile's one worker", "one worker", "three workers"])
def test_the_procfile_serves_long_polling_only_when_it_runs_a_single_worker(fresh_database, redis_factory, tmp_path,
                                                                            settings, workers, polling):
    env = server_env(fresh_database("procfile"), redis_factory().url, workers=1)
    del env["WEB_CONCURRENCY"]
    env.update(settings)
    server = BalanceServer.procfile(env, tmp_path / "gunicorn.log", workers).start()  # waits for `workers` gateways
    try:
        reply = requests.get(server.url + POLLING_HANDSHAKE, timeout=5)
        if polling:
            assert reply.status_code == 200 and '"upgrades":["websocket"]' in reply.text, reply.text
        else:
            assert reply.status_code == 400 and "Invalid transport" in reply.text, reply.text
    finally:
        server.stop()


def test_workers_counted_by_gunicorn_alone_are_websocket_only_too(fresh_database, redis_factory, tmp_path):
    """``gunicorn -w 2`` with no WEB_CONCURRENCY: gunicorn.conf.py tells each worker the count it was forked into."""
    env = server_env(fresh_database("procfile"), redis_factory().url, workers=1)
    del env["WEB_CONCURRENCY"]

    def command(port: int):
        return [str(BIN / "gunicorn"), "-k", "gevent", "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi:app"], {}

    server = BalanceServer(command, env, tmp_path / "gunicorn.log", 2, SUBSCRIBED).start()
    try:
        reply = requests.get(server.url + POLLING_HANDSHAKE, timeout=5)
        assert reply.status_code == 400 and "Invalid transport" in reply.text, reply.text
    finally:
        server.stop()


def test_several_workers_without_redis_refuse_to_start_saying_why(fresh_database, tmp_path):
    """Without the Redis channel each worker would deliver only its own changes: sockets elsewhere would miss them."""
    env = server_env(fresh_database("procfile"), None, workers=2)
    server = BalanceServer.procfile(env, tmp_path / "gunicorn.log", 2)
    with pytest.raises(AssertionError, match="server exited"):
        server.start(timeout=30)
    assert "2 workers (WEB_CONCURRENCY) need REDIS_URL" in server.log_text()
