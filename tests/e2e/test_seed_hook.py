"""The seed's ``useBalance`` hook, as the npm ``socket.io-client`` runs it: tests/node/seed_hook.test.mjs.

Unchanged (long-polling first, then the upgrade) against one process, which serves
both transports; with ``transports: ['websocket']`` against 3 gunicorn workers, which
serve websocket only (long-polling would need sticky sessions) and refuse the
unchanged hook at once rather than half-working.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess

import pytest
import requests

from tests.e2e.clients import Api
from tests.e2e.servers import IN_PROCESS, ROOT, BalanceServer, server_env

pytestmark = pytest.mark.multiprocess

SCRIPT = ROOT / "tests" / "node" / "seed_hook.test.mjs"
ADMIN = ("admin@example.com", "admin-password-seed-hook")


def node_test(base_url: str, api: Api, admin_token: str, shape: str) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if not node or not (ROOT / "node_modules" / "socket.io-client").is_dir():
        pytest.skip("needs Node.js and `npm ci` (socket.io-client)")
    user = api.new_user("hook")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "BALANCE_URL": base_url,
           "USER_EMAIL": user.email, "USER_PASSWORD": "password123", "ADMIN_TOKEN": admin_token,
           "SERVER_SHAPE": shape, "NO_COLOR": "1"}
    proc = subprocess.Popen([node, "--test", "--test-reporter=spec", str(SCRIPT)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"node --test did not finish in 90s:\n{out}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    """``python app.py`` on the embedded defaults: SQLite, no Redis, one process serving both transports."""
    home = tmp_path_factory.mktemp("single")
    env = server_env(f"sqlite:///{home / 'balance.sqlite3'}", None, workers=1, BALANCE_ENV="development",
                     ADMIN_EMAIL=ADMIN[0], ADMIN_PASSWORD=ADMIN[1])
    server = BalanceServer.single_process(env, home / "server.log")
    try:
        yield server.start()
    finally:
        server.stop()


def test_the_seed_hook_unchanged_works_against_one_process_serving_polling_and_websocket(single_process):
    api = Api(single_process.url)
    admin = api.login(*ADMIN)
    done = node_test(single_process.url, api, admin.token, "single")
    assert done.returncode == 0, done.stdout
    assert re.search(r"\bpass 3\b", done.stdout) and re.search(r"\bfail 0\b", done.stdout), done.stdout


def test_the_seed_hook_with_websocket_transport_works_against_three_workers(cluster):
    done = node_test(cluster.url, cluster.api, cluster.admin.token, "workers")
    assert done.returncode == 0, done.stdout
    assert re.search(r"\bpass 3\b", done.stdout) and re.search(r"\bfail 0\b", done.stdout), done.stdout


def test_python_app_py_logs_that_its_gateway_runs_in_process(single_process):
    assert single_process.pids_that_logged(IN_PROCESS), single_process.log_tail()


def test_a_websocket_that_closes_on_python_app_py_is_followed_by_nothing_on_its_connection(single_process):
    """gevent's server wrote engine.io's empty 200 after the closing frame: browsers logged 'Invalid frame header'
    on every page change. A browser's path: polling handshake, the namespace, the upgrade, then the page goes."""
    api, base = Api(single_process.url), single_process.url
    token = api.login(*ADMIN).token
    sid = json.loads(requests.get(base + "/socket.io/?EIO=4&transport=polling", timeout=5).text[1:])["sid"]
    polling = f"{base}/socket.io/?EIO=4&transport=polling&sid={sid}"
    requests.post(polling, data="40/balance," + json.dumps({"token": token}), timeout=5)
    requests.get(polling, timeout=5)
    with socket.create_connection(("127.0.0.1", single_process.port), timeout=5) as conn:
        conn.sendall((f"GET /socket.io/?EIO=4&transport=websocket&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n").encode())
        assert received(conn).startswith(b"HTTP/1.1 101")
        for payload in (b"2probe", b"5"):  # the probe, then the upgrade
            conn.sendall(client_frame(0x1, payload))
            received(conn)
        conn.sendall(client_frame(0x8, struct.pack("!H", 1001)))
        assert received(conn) == b"\x88\x02\x03\xe9", "the server's closing frame, then nothing"


def client_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def received(conn: socket.socket, quiet: float = 1.0) -> bytes:
    """Everything the server sends until it closes the connection or says nothing for ``quiet`` seconds."""
    conn.settimeout(quiet)
    data = b""
    try:
        while chunk := conn.recv(4096):
            data += chunk
    except TimeoutError:
        pass
    return data


def test_python_app_py_answers_an_ordinary_request_that_carries_an_upgrade_header(single_process):
    """Only engine.io's own websocket requests are left unanswered after their websocket ends."""
    reply = requests.get(single_process.url + "/healthz", headers={"Upgrade": "websocket"}, timeout=5)
    assert (reply.status_code, reply.json()) == (200, {"status": "ok"})
