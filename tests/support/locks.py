"""A transaction that holds a lock from outside the app until told to let go: a psql session someone forgot."""
from __future__ import annotations

import threading
import time

import psycopg


class Holder:
    """Runs ``sql`` in a transaction of its own and keeps it open until ``release`` (a forgotten psql session)."""

    def __init__(self, uri: str, sql: str):
        self.url = uri.replace("postgresql+psycopg://", "postgresql://")
        self.taken, self.released = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(sql,), daemon=True)
        self.thread.start()
        assert self.taken.wait(30), "the lock was never taken"

    def _run(self, sql: str) -> None:
        with psycopg.connect(self.url) as conn:
            conn.execute(sql)
            self.taken.set()
            self.released.wait(60)
            conn.rollback()

    def release_once_someone_has_waited(self, at_least: float) -> None:
        """Let go once another backend has been waiting on a lock for ``at_least`` seconds (so it truly waited)."""
        with psycopg.connect(self.url, autocommit=True) as watcher:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                waited = watcher.execute(
                    "SELECT max(extract(epoch FROM now() - query_start)) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()").fetchone()[0]
                if waited is not None and waited >= at_least:
                    break
                time.sleep(0.05)
        self.release()

    def release(self) -> None:
        self.released.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
