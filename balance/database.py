"""Engine set-up per dialect, and the write transaction every money-moving service runs in.

SQLite: WAL, foreign keys, a busy timeout, and ``BEGIN IMMEDIATE`` for writes so
two writers queue for the lock instead of one failing half-way. PostgreSQL needs
nothing special: the services' guarded ``UPDATE ... WHERE`` statements take row
locks and PostgreSQL re-checks the guard after waiting for one.
"""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine

from .extensions import db

_IMMEDIATE = "balance_sqlite_immediate"


def engine_options(uri: str) -> dict:
    """SQLAlchemy engine options for the configured database."""
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}


def install_sqlite_hooks(engine: Engine) -> None:
    """Take over SQLite's transaction handling so ``BEGIN IMMEDIATE`` is possible."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        if not engine.url.database in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = "IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE) else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def write_transaction():
    """Run a block as one atomic write: commit on success, roll back on any error.

    On SQLite any read transaction the request had open is ended first, so that the
    write lock is taken before the first read of this transaction (no stale snapshot,
    no lock upgrade failing under load). On PostgreSQL the write simply continues the
    request's transaction (READ COMMITTED: every statement sees what is committed, and
    the guarded updates lock what they change), which saves a rollback, a pool
    checkout and its ping on every change. Callers pass ids, not ORM objects loaded
    earlier.
    """
    session = db.session
    if session.get_bind().dialect.name == "sqlite":
        session.rollback()
        session.connection(execution_options={_IMMEDIATE: True})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
