"""The Procfile's ``web:`` line, run as a platform runs it: it serves long-polling only when it runs one worker.

Polling needs every request of a session to reach the same worker, so with several
workers behind one port the server must be websocket-only (clients then learn at
once that they must use ``transports: ['websocket']``, instead of connecting and
dropping in a loop). With ``WEB_CONCURRENCY`` unset the Procfile starts two.
"""
from __future__ import annotations

import pytest
import requests

from tests.e2e.servers import BalanceServer, server_env

pytestmark = pytest.mark.multiprocess

POLLING_HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


@pytest.mark.parametrize(("web_concurrency", "workers", "polling"), [
    (None, 2, False),
    ("1", 1, True),
    ("3", 3, False),
], ids=["unset: the Procfile's two workers", "one worker", "three workers"])
def test_the_procfile_serves_long_polling_only_when_it_runs_a_single_worker(fresh_database, tmp_path, web_concurrency,
                                                                            workers, polling):
    env = server_env(fresh_database("procfile"), None, workers=1)
    del env["WEB_CONCURRENCY"]
    if web_concurrency is not None:
        env["WEB_CONCURRENCY"] = web_concurrency
    server = BalanceServer.procfile(env, tmp_path / "gunicorn.log", workers).start()  # waits for `workers` gateways
    try:
        reply = requests.get(server.url + POLLING_HANDSHAKE, timeout=5)
        if polling:
            assert reply.status_code == 200 and '"upgrades":["websocket"]' in reply.text, reply.text
        else:
            assert reply.status_code == 400 and "Invalid transport" in reply.text, reply.text
    finally:
        server.stop()
