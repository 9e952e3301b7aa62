"""The real thing, started for a test: gunicorn (or ``python app.py``) in its own process group, and its CLI.

A ``BalanceServer`` is started from the repository's entrypoints with an explicit
environment (nothing is inherited that could point it at a shared Redis or
database), logs to a file the tests can read, and is killed with its whole process
group when the test is done, even when it failed. ``deploy`` starts one and gives
it an admin (made with ``flask --app app create-admin``, as an operator would);
``query`` and ``commit_without_publishing`` reach its database directly.
"""
from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

from balance.extensions import db
from balance.services import wallet
from tests.e2e.clients import Api, Person
from tests.support import databases, services

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

SECRET_KEY = "e2e-secret-key-long-enough-for-production-0123456789"
JWT_SECRET = "e2e-jwt-secret-long-enough-for-production-0123456789"
SUBSCRIBED = "BalanceGateway initialized and subscribed to Redis balance events"
IN_PROCESS = "BalanceGateway initialized in-process"
ADMIN_PASSWORD = "admin-password-e2e-1"

_running: set[BalanceServer] = set()


def server_env(database_url: str, redis_url: str | None, workers: int, **settings: str) -> dict[str, str]:
    """The environment of a production-like server; ``settings`` add or override variables."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if name in os.environ}
    env.update({
        "PYTHONUNBUFFERED": "1",
        "BALANCE_ENV": "production",
        "SECRET_KEY": SECRET_KEY,
        "JWT_SECRET": JWT_SECRET,
        "DATABASE_URL": database_url,
        "WEB_CONCURRENCY": str(workers),
        "LOGIN_RATE_LIMIT": "100000 per minute",
        # short grace so a row left behind is relayed within a couple of seconds in the tests
        "OUTBOX_RELAY_INTERVAL": "0.5",
        "OUTBOX_RELAY_GRACE": "1.0",
    })
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(settings)
    return env


class BalanceServer:
    """One server process group; ``start`` returns once it answers and every worker's gateway has said so."""

    def __init__(self, command, env: dict[str, str], log_path: Path, workers: int, ready_line: str | None):
        self.command = command  # port -> (argv, extra environment)
        self.env, self.log_path, self.workers, self.ready_line = env, log_path, workers, ready_line
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._log = None

    @classmethod
    def gunicorn(cls, env: dict[str, str], log_path: Path, workers: int = 3) -> BalanceServer:
        def command(port: int):
            return [str(BIN / "gunicorn"), "-k", "gevent", "-w", str(workers), "--worker-connections", "1000",
                    "-b", f"127.0.0.1:{port}", "--graceful-timeout", "1", "--no-control-socket", "wsgi:app"], {}

        ready = SUBSCRIBED if env.get("REDIS_URL") else IN_PROCESS
        return cls(command, {**env, "WEB_CONCURRENCY": str(workers)}, log_path, workers, ready)

    @classmethod
    def procfile(cls, env: dict[str, str], log_path: Path, workers: int) -> BalanceServer:
        """The Procfile's ``web:`` line as a platform runs it (a shell, ``PORT`` set); ``workers`` is how many it
        should start, for the readiness check."""
        lines = (ROOT / "Procfile").read_text().splitlines()
        line = next(text for text in lines if text.startswith("web:"))[len("web:"):].strip()

        def command(port: int):
            path = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
            return ["bash", "-c", "exec " + line], {"PORT": str(port), "PATH": path}

        ready = SUBSCRIBED if env.get("REDIS_URL") else IN_PROCESS
        return cls(command, env, log_path, workers, ready)

    @classmethod
    def single_process(cls, env: dict[str, str], log_path: Path) -> BalanceServer:
        """``python app.py``: one process, both transports, in-process bus when there is no ``REDIS_URL``.

        Ready when it answers: its gateway's start-up line is not waited for, since the
        migrations it runs first reconfigure logging (see test_seed_hook.py).
        """
        def command(port: int):
            return [sys.executable, "app.py"], {"HOST": "127.0.0.1", "PORT": str(port)}

        return cls(command, {**env, "WEB_CONCURRENCY": "1"}, log_path, 1, None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 40.0, attempts: int = 3) -> BalanceServer:
        """Start on a free port (another one if someone took it meanwhile) and wait until ready."""
        for _ in range(attempts):
            self.port = services.free_port()
            argv, extra = self.command(self.port)
            self.env = {**self.env, **extra}
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
            _running.add(self)
            if self._wait_ready(timeout):
                return self
            self.stop()  # it exited: the port was taken between choosing and binding it
        raise AssertionError(f"server could not bind a port in {attempts} attempts:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "in use" in self.log_tail(5):
                    return False
                raise AssertionError(f"server exited with {self.proc.returncode} while starting:\n{self.log_tail()}")
            logged = self.ready_line is None or len(self.pids_that_logged(self.ready_line)) >= self.workers
            if logged and self._healthy():
                return True
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout}s (wanted {self.workers} x {self.ready_line!r}):\n"
                             f"{self.log_tail()}")

    def _healthy(self) -> bool:
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        """Quick shutdown of the master, then SIGKILL to whatever is left of the process group."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(1.5)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        finally:
            self.proc = None
            _running.discard(self)
            if self._log:
                self._log.close()
                self._log = None

    # -- what it said ------------------------------------------------------------------------

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def pids_that_logged(self, text: str) -> set[int]:
        """The worker pids whose log lines (``time pid LEVEL [logger] message``) contain ``text``."""
        found = set()
        for line in self.log_text().splitlines():
            if text in line:
                match = re.match(r"^\S+ \S+ (\d+) ", line)
                if match:
                    found.add(int(match.group(1)))
        return found

    def count_logged(self, text: str) -> int:
        return sum(text in line for line in self.log_text().splitlines())

    # -- its command line --------------------------------------------------------------------

    def flask(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """``flask --app app ...`` against the same database, as an operator would run it."""
        return subprocess.run([str(BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def create_admin(self, email: str, password: str) -> None:
        done = self.flask("create-admin", email, "--password", password)
        assert done.returncode == 0, f"create-admin failed: {done.stdout}{done.stderr}"


@atexit.register
def _stop_everything() -> None:
    for server in list(_running):
        server.stop()


def query(database_url: str, sql: str, *params) -> list[tuple]:
    """Read the server's PostgreSQL database directly: the truth the tests compare the sockets with."""
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def eventually(check, what: str, timeout: float = 10.0, interval: float = 0.1):
    """Poll ``check()`` until it returns something true, and return that; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not so after {timeout}s (last seen: {value!r})")
        time.sleep(interval)


@dataclass
class Deployment:
    """A running server with its Redis, database and an admin, and an API client for it."""

    server: BalanceServer
    redis: services.RedisServer | None
    database_url: str
    admin: Person
    api: Api

    @property
    def url(self) -> str:
        return self.server.url


def deploy(server: BalanceServer, redis, database_url: str) -> Deployment:
    server.start()
    admin_email = f"admin-{server.port}@example.com"
    server.create_admin(admin_email, ADMIN_PASSWORD)
    api = Api(server.url)
    return Deployment(server, redis, database_url, api.login(admin_email, ADMIN_PASSWORD), api)


def commit_without_publishing(database_url: str, transaction_id: str, admin_id: int) -> None:
    """Approve a top-up the way a process that died right after commit would: the outbox row stays unpublished."""
    app = databases.make_app(database_url, OUTBOX_PUBLISH_AFTER_COMMIT=False)
    with app.app_context():
        wallet.process_topup(wallet.ProcessTopup(transaction_id, admin_id, approve=True))
        db.session.remove()
        db.engine.dispose()
