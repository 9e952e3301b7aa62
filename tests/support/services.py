"""Throwaway Redis and PostgreSQL servers for the test suite.

``REDIS_URL`` / ``TEST_DATABASE_URL`` win when given. Otherwise a private server is
started from the machine's binaries in a temporary directory on a free port and
removed at exit, so the suite never touches (or needs) a shared one. As root,
PostgreSQL runs as an unprivileged user, since it refuses to run as root.
"""
from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time


class ServiceUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceUnavailable(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class RedisServer:
    """A private redis-server that a test may stop and start again on the same port."""

    def __init__(self, port: int | None = None):
        binary = shutil.which("redis-server")
        if not binary:
            raise ServiceUnavailable("redis-server not found: install Redis (scripts/test does) or set REDIS_URL")
        self.binary = binary
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="balance-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found and name != "initdb":
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if found:
        candidates.insert(0, found)
    if not candidates:
        raise ServiceUnavailable(f"{name} not found: install PostgreSQL (scripts/test does) or set TEST_DATABASE_URL")
    return candidates[0]


class PostgresServer:
    """A private PostgreSQL cluster with fsync off, for speed; it holds nothing worth keeping."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="balance-pg-")
        self.data = os.path.join(self.dir, "data")
        self.user = None
        if os.geteuid() == 0:
            self.user = next((u for u in ("postgres", "nobody") if _exists(u)), None)
            os.chmod(self.dir, 0o777)

    def _run(self, args: list[str], **kw):
        if self.user:
            args = ["runuser", "-u", self.user, "--", *args]
        return subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresServer:
        self._run([_pg_bin("initdb"), "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off " \
               f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        self._run([_pg_bin("pg_ctl"), "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "log"), "-w", "start"])
        return self

    def close(self) -> None:
        try:
            self._run([_pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "stop"])
        except (subprocess.CalledProcessError, ServiceUnavailable):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


_started: dict[str, object] = {}


def redis_url() -> str:
    """``REDIS_URL`` if given, else a throwaway server for this test run."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if "redis" not in _started:
        server = RedisServer().start()
        atexit.register(server.close)
        _started["redis"] = server
    return _started["redis"].url


def postgres_url() -> str:
    """``TEST_DATABASE_URL`` if given, else a throwaway cluster for this test run."""
    if os.environ.get("TEST_DATABASE_URL"):
        return os.environ["TEST_DATABASE_URL"]
    if "postgres" not in _started:
        server = PostgresServer().start()
        atexit.register(server.close)
        _started["postgres"] = server
    return _started["postgres"].url
