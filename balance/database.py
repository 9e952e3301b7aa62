"""Engine set-up per dialect, the write transaction every money-moving service runs in, and batched statements.

SQLite: WAL, foreign keys, a busy timeout, and ``BEGIN IMMEDIATE`` for writes so
two writers queue for the lock instead of one failing half-way. PostgreSQL needs
nothing special: the services' guarded ``UPDATE ... WHERE`` statements take row
locks and PostgreSQL re-checks the guard after waiting for one.

``together`` runs statements that do not need each other's results in one round
trip to PostgreSQL; a balance change is a handful of such inserts, and on a busy
gevent worker every wait for the database is a chance for other greenlets to run
first, so it costs far more than the statement. For the same reason nothing here
spends a round trip of its own on bookkeeping: the request's first read (the caller)
runs outside a transaction, a write transaction's ``BEGIN`` rides with its first
statements, and a pooled connection is pinged only when it has sat idle.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg import ClientCursor
from psycopg.errors import _WaitTimeout  # what psycopg's wait functions raise when given a timeout
from psycopg.pq import ExecStatus, TransactionStatus
from sqlalchemy import delete, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.sql import Executable

from .extensions import db

_IMMEDIATE = "balance_sqlite_immediate"


PING_AFTER_IDLE = 1.0  # seconds a pooled PostgreSQL connection may sit unused before it is checked on checkout
CONNECT_TIMEOUT = 5  # seconds for a new connection, and for the ping of one that sat idle
IDLE_IN_TRANSACTION = 60  # seconds PostgreSQL lets a session sit idle inside a transaction (with statement bounds)


def engine_options(uri: str, statement_timeout: float = 0, lock_timeout: float = 0) -> dict:
    """SQLAlchemy engine options for the configured database.

    PostgreSQL's pool hands out the connection returned last (LIFO), so under load the
    same few stay busy and the rest idle out; ``install_postgresql_hooks`` pings only
    those that have been idle, instead of SQLAlchemy's ``pool_pre_ping`` on every checkout.

    Two bounds (seconds, 0 for none) on every PostgreSQL statement: ``lock_timeout`` on
    waiting for a lock, ``statement_timeout`` on the whole statement. A wallet row held
    by a transaction that never ends (a forgotten ``psql`` session, say) would otherwise
    hold every request for it, each with its pool connection, until the pool ran dry and
    the worker answered nobody; bounded, they are told to try again (503), and a short
    lock wait keeps the pool turning over even while clients retry. Both are startup
    options (no round trip), added to any ``options`` the URL or ``PGOPTIONS`` give.
    Work that may rightly take longer (migrations, ``ledger verify``) lifts the statement
    bound for its own transaction (``no_statement_timeout``); the lock bound stays, so a
    migration stuck behind a lock fails rather than stalls every request queued behind it.
    """
    if uri.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # connect_timeout: a database that accepts the TCP connection but does not answer (frozen, overloaded) fails
    # the request in seconds (503) instead of holding it, and its greenlet's pool slot, indefinitely
    connect_args: dict = {"connect_timeout": CONNECT_TIMEOUT}
    # idle_in_transaction_session_timeout: a transaction left open by a connection that was cut off (a partition
    # after which its close never arrived) would keep its row locks until TCP noticed, hours later; none of ours
    # sits idle inside a transaction for anything like a minute
    idle = IDLE_IN_TRANSACTION if statement_timeout else 0
    ours = [f"-c {name}={max(1, round(seconds * 1000))}"
            for name, seconds in (("statement_timeout", statement_timeout), ("lock_timeout", lock_timeout),
                                  ("idle_in_transaction_session_timeout", idle)) if seconds]
    if ours:
        # (libpq reads PGOPTIONS only when no options are passed, and these are)
        given = make_url(uri).query.get("options", os.environ.get("PGOPTIONS"))
        given = list(given) if isinstance(given, tuple) else [given] if given else []
        connect_args["options"] = " ".join(given + ours)
    return {"pool_size": 10, "max_overflow": 20, "pool_use_lifo": True, "connect_args": connect_args}


# PostgreSQL's query_canceled (statement_timeout spent) and lock_not_available (lock_timeout): it gave up waiting
# and rolled the transaction back. (Not "nothing changed": a page may read after its change committed.)
_GAVE_UP_WAITING = frozenset({"57014", "55P03"})


def gave_up_waiting(error: DBAPIError) -> bool:
    """Whether the statement was stopped at one of the bounds on waiting: PostgreSQL's own (``engine_options``), or
    ours on its answer (``AnswerBoundConnection``)."""
    return isinstance(error.orig, NoAnswer) or getattr(error.orig, "sqlstate", None) in _GAVE_UP_WAITING


def outcome_unknown(error: DBAPIError) -> bool:
    """Whether this request's change may have been made after all: its ``COMMIT`` was on its way (``commit_in_flight``)
    when the connection went silent (``NoAnswer``) or was lost, so its answer never came. (PostgreSQL's own
    refusals roll back; a failure before the COMMIT left nothing behind, one after its answer changes nothing.)"""
    lost = isinstance(error.orig, NoAnswer) or (error.connection_invalidated and not gave_up_waiting(error))
    return lost and commit_in_flight()


_COMMIT_IN_FLIGHT = "balance.commit_in_flight"


def commit_in_flight() -> bool:
    """Whether the request's session sent a ``COMMIT`` (``together(commit=True)``, ``write_transaction``) that was
    not answered."""
    return db.session.info.get(_COMMIT_IN_FLIGHT, False)


class NoAnswer(psycopg.OperationalError):
    """PostgreSQL did not answer within the connection's bound; the connection was closed."""


class AnswerBoundConnection(psycopg.Connection):
    """A psycopg connection that waits at most ``answer_within`` seconds for PostgreSQL, then closes itself.

    PostgreSQL's own bounds (``statement_timeout``, ``lock_timeout``) need a server that
    runs: a frozen one, or one cut off by a partition that drops packets without closing
    connections (a failover, say), would hold each waiting request and its pool connection
    until it answered or TCP gave up, hours later. Set longer than the statement timeout,
    this bound only ends waits a running server would have ended itself. A wait cut short
    leaves the protocol mid-exchange, so the connection is closed (SQLAlchemy then discards
    it) and the server rolls back whatever it had once it notices; a ``COMMIT`` cut short
    has an unknown outcome, as with any connection lost on the way.
    """

    answer_within: float | None = None  # this transaction's bound (``no_statement_timeout`` lifts it)
    usual_answer_within: float | None = None  # restored when the pool takes the connection back

    def wait(self, gen, *args, timeout: float | None = None, **kwargs):
        if timeout is not None or not self.answer_within:
            return super().wait(gen, *args, timeout=timeout, **kwargs)
        try:
            return super().wait(gen, *args, timeout=self.answer_within, **kwargs)
        except _WaitTimeout:
            self.close()
            raise NoAnswer(f"PostgreSQL did not answer within {self.answer_within:g} s; "
                           "the connection was closed") from None


@contextmanager
def _answer_within(driver, seconds: float):
    """A shorter bound on ``driver``'s waits for the block (a ping needs no statement's time)."""
    before = getattr(driver, "answer_within", None)
    if isinstance(driver, AnswerBoundConnection):
        driver.answer_within = min(before, seconds) if before else seconds
    try:
        yield
    finally:
        if isinstance(driver, AnswerBoundConnection):
            driver.answer_within = before


def no_statement_timeout(conn) -> None:
    """Lift ``statement_timeout`` until the end of ``conn``'s current transaction (PostgreSQL; nothing elsewhere),
    and with it the bound on waiting for the answer, until the pool takes the connection back."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        driver = conn.connection.driver_connection
        if isinstance(driver, AnswerBoundConnection):
            driver.answer_within = None


def delete_batch(model, ids: Executable) -> int:
    """Delete the rows of ``model`` whose ids the select ``ids`` names, and commit; return how many went.

    Housekeeping's unit of work (pruning the outbox, old idempotency keys): a transaction of
    its own, never part of a request's change.
    """
    try:
        gone = db.session.execute(delete(model).where(model.id.in_(ids.scalar_subquery()))).rowcount
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return gone


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


def install_postgresql_hooks(engine: Engine, answer_within: float = 0) -> None:
    """Bound every wait for an answer, ping a pooled connection on checkout only if it sat idle, and hand none back
    with autocommit on.

    ``answer_within`` (seconds, 0 for none) is ``AnswerBoundConnection``'s bound; a ping
    gets at most ``CONNECT_TIMEOUT``, as a new connection would.

    A connection used a moment ago is as good as its last answer; one that sat idle
    may have been dropped (a database restart, an idle timeout) and is pinged first,
    as ``pool_pre_ping`` would: if the ping fails the pool opens a new one. A restart
    noticed by a statement instead invalidates the whole pool (SQLAlchemy does that
    on any disconnect), and the caller's read, every request's first, is retried once
    on a fresh connection (``first_read``). Saves a round trip per request under load.
    """
    if engine.dialect.name != "postgresql":
        return
    dialect = engine.dialect

    @event.listens_for(engine, "do_connect")
    def _bounded(_dialect, _record, cargs, cparams):
        driver = AnswerBoundConnection.connect(*cargs, **cparams)  # what psycopg.connect does, with our class
        driver.answer_within = driver.usual_answer_within = answer_within or None
        return driver

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_conn, record):
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy):
        if dbapi_conn.autocommit or dbapi_conn.info.transaction_status != TransactionStatus.IDLE:
            raise DisconnectionError("pooled connection not clean (autocommit or a transaction left open)")
        if time.monotonic() - record.info.get(_IDLE_SINCE, 0.0) < PING_AFTER_IDLE:
            return
        try:
            with _answer_within(dbapi_conn, CONNECT_TIMEOUT):
                dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            cut_short = exc.__context__
            if cut_short is not None and not isinstance(cut_short, Exception):
                # A greenlet's timeout (the gateway's bounded reads) or kill during the ping: the ping's own clean-up
                # then failed on the busy connection and hid it, and the pool would have waited out a new
                # connection. It goes on as itself; the pool discards this connection on any exception here.
                raise cut_short from None
            raise DisconnectionError("pooled connection failed its ping") from exc  # the pool retries with a new one

    @event.listens_for(engine, "checkin")
    def _idle(dbapi_conn, record):
        if dbapi_conn is None:  # invalidated
            return
        _autocommit_off(dbapi_conn)
        if isinstance(dbapi_conn, AnswerBoundConnection):
            dbapi_conn.answer_within = dbapi_conn.usual_answer_within
        record.info[_IDLE_SINCE] = time.monotonic()


_IDLE_SINCE = "balance.idle_since"


def _autocommit_off(driver) -> None:
    """Back to psycopg's default (an implicit ``BEGIN`` before a statement) once no transaction is open."""
    if driver.autocommit and not driver.closed and driver.info.transaction_status == TransactionStatus.IDLE:
        driver.autocommit = False


def first_read(statement: Executable, params: dict) -> list:
    """The request's first statement, a read: outside any transaction on PostgreSQL, and retried once if the connection was dead.

    psycopg opens a transaction before a statement with a ``BEGIN`` of its own, a round
    trip; a single read needs none, so it runs in autocommit as SQLAlchemy's own ping
    does, and whatever the request does next opens its transaction as usual. As the
    first statement it is also where a database restart shows: SQLAlchemy then
    invalidates the pool, and the read is tried again on a new connection. If it is
    not the first after all (a transaction is open), it runs in that transaction and is
    never retried: a retry would start over without what ran before it.
    """
    conn = db.session.connection()
    if conn.dialect.name != "postgresql" or not _nothing_open(conn):
        return conn.execute(statement, params).all()
    try:
        return _autocommit_read(conn, statement, params)
    except DBAPIError as exc:
        if not exc.connection_invalidated or isinstance(exc.orig, NoAnswer):  # a silent server: no second wait
            raise
    db.session.rollback()  # nothing ran on the dead connection: nothing is lost
    return _autocommit_read(db.session.connection(), statement, params)  # checkout hands out only clean ones


def _nothing_open(conn) -> bool:
    driver = conn.connection.driver_connection
    return not driver.autocommit and driver.info.transaction_status == TransactionStatus.IDLE


def _autocommit_read(conn, statement: Executable, params: dict) -> list:
    driver = conn.connection.driver_connection
    driver.autocommit = True
    try:
        return conn.execute(statement, params).all()
    finally:
        _autocommit_off(driver)


@contextmanager
def write_transaction():
    """Run a block as one atomic write: commit on success, roll back on any error.

    On SQLite any read transaction the request had open is ended first, so that the
    write lock is taken before the first read of this transaction (no stale snapshot,
    no lock upgrade failing under load). On PostgreSQL the write simply continues the
    request's transaction (READ COMMITTED: every statement sees what is committed, and
    the guarded updates lock what they change), which saves a rollback, a pool
    checkout and its ping on every change; if none is open yet, the first ``together``
    of the block sends the ``BEGIN`` with its statements. Callers pass ids, not ORM
    objects loaded earlier.
    """
    session = db.session
    if _unflushed(session):  # PostgreSQL would commit them with the change, SQLite's rollback would drop them
        raise RuntimeError("ORM changes made before a write_transaction, outside it")
    if session.get_bind().dialect.name == "sqlite":
        session.rollback()
        session.connection(execution_options={_IMMEDIATE: True})
    session.info[_MAY_OPEN] = True
    try:
        yield session
        if session.info.pop(_COMMITTED, False) and _still_in_transaction(session):
            raise RuntimeError("a statement ran after together(commit=True) had committed the change")
        session.info[_COMMIT_IN_FLIGHT] = True
        session.commit()
        session.info[_COMMIT_IN_FLIGHT] = False
    except BaseException:
        session.info.pop(_COMMITTED, None)
        session.rollback()
        raise
    finally:
        session.info.pop(_MAY_OPEN, None)


_COMMITTED = "balance.committed_by_together"
_MAY_OPEN = "balance.together_may_begin"


def _unflushed(session) -> bool:
    return bool(session.new or session.dirty or session.deleted)


def _still_in_transaction(session) -> bool:
    return session.connection().connection.driver_connection.info.transaction_status != TransactionStatus.IDLE


Step = tuple[Executable, dict]
_compiled: dict[tuple[int, str], Any] = {}


def together(*steps: Step, commit: bool = False) -> list[list[tuple] | None]:
    """Run ``(statement, parameters)`` steps in order, in the session's transaction; return each one's rows.

    The statements must not depend on each other's results (a later one may read what
    an earlier one wrote: they run in order). On PostgreSQL they go out as one
    simple-protocol query, their values bound client-side by psycopg (its adapters
    and quoting, as ``ClientCursor`` does): one round trip and one wait for the whole
    batch, where psycopg's pipeline mode waited once per statement under gevent
    (0.45 against 0.25 ms for six statements). Elsewhere they run one by one.
    Statements are module-level constants (their SQL is compiled once per dialect and
    set of parameter names); values go to the driver as they are, so datetimes must
    already be timezone-aware UTC, as ``models.utcnow`` makes them. A failing
    statement raises what SQLAlchemy would have (``IntegrityError`` for a unique key), with
    the statements' text but not their values (which hold people's data).

    ``commit=True`` (the last writes of a ``write_transaction``): on PostgreSQL the
    COMMIT rides in the same round trip, so the change is durable when this returns
    and ``write_transaction`` has nothing left to send (it refuses to commit anything
    that ran afterwards); elsewhere ``write_transaction`` commits as usual.

    The first batch of a ``write_transaction`` on a connection with no transaction
    open sends the ``BEGIN`` itself, in front of its statements: psycopg would send it
    alone first. psycopg is told so by autocommit mode, which then lasts exactly as
    long as that transaction (its ``COMMIT`` or ``ROLLBACK`` ends it, and the pool's
    check-in turns autocommit off again, see ``install_postgresql_hooks``); any
    statement in between runs inside it.
    """
    conn = db.session.connection()
    if conn.dialect.name != "postgresql":
        results = []
        for statement, params in steps:
            _compile(statement, conn.dialect, params)  # the same refusals on every database
            result = conn.execute(statement, _values(params))
            results.append([tuple(row) for row in result] if result.returns_rows else None)
        return results
    if commit and _unflushed(db.session):
        raise RuntimeError("ORM changes pending in the session would miss the change's commit")
    driver = conn.connection.driver_connection
    cursor = ClientCursor(driver)  # psycopg's own adapters and quoting, client-side: no placeholders left
    parts, shapes = [], []
    for statement, params in steps:
        compiled = _compile(statement, conn.dialect, params)
        shapes.append(compiled.string)
        parts.append(cursor.mogrify(compiled.string, _values(compiled.construct_params(params))))
    idle = driver.info.transaction_status == TransactionStatus.IDLE
    opening = idle and db.session.info.get(_MAY_OPEN, False)
    if idle and driver.autocommit and not opening:
        raise RuntimeError("autocommit left on outside a transaction: the batch would not be atomic with the rest")
    if opening:
        parts.insert(0, "BEGIN")
        driver.autocommit = True  # else psycopg sends a BEGIN of its own, alone, first
    if commit:
        parts.append("COMMIT")
        db.session.info[_COMMIT_IN_FLIGHT] = True  # until it is answered, a lost answer leaves the outcome unknown
    sql = ";\n".join(parts)
    try:
        cursor.execute(sql)  # one simple-protocol query holding every statement: one round trip, one wait
    except driver.Error as exc:  # psycopg's own error: give callers what SQLAlchemy would have raised
        gone = conn.dialect.is_disconnect(exc, driver, cursor)
        if gone:
            conn.invalidate(exc)  # as SQLAlchemy does for its own statements: never back into the pool
        raise DBAPIError.instance(";\n".join(shapes), None, exc, type(driver).Error,
                                  connection_invalidated=gone, dialect=conn.dialect) from exc
    except BaseException as exc:  # interrupted mid-query (a gevent Timeout, a killed greenlet): state unknown
        conn.invalidate(exc)  # closed, so the server rolls back and frees the rows' locks; never back into the pool
        raise
    finally:
        _autocommit_off(driver)  # when the batch ended the transaction (COMMIT, or a failed BEGIN)
    if opening:
        cursor.nextset()  # past BEGIN's empty result
    results = []
    for _ in steps:
        returned = cursor.pgresult is not None and cursor.pgresult.status == ExecStatus.TUPLES_OK
        results.append(cursor.fetchall() if returned else None)  # (not .description: it builds column objects)
        cursor.nextset()
    if commit:
        db.session.info[_COMMITTED] = True
        db.session.info[_COMMIT_IN_FLIGHT] = False  # answered
    return results


def _compile(statement: Executable, dialect, params: dict) -> Any:
    """The statement's SQL for these parameter names, compiled once (as SQLAlchemy's own cache would).

    Refuses what only SQLAlchemy's execution could complete: values filled in at run
    time (expanding ``IN`` lists) and columns left to a Python-side default, which
    would otherwise reach PostgreSQL as broken SQL or as NULL.
    """
    key = (id(statement), dialect.name, tuple(params))
    found = _compiled.get(key)
    if found is None or found[0] is not statement:
        compiled = statement.compile(dialect=dialect, column_keys=list(params))
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("together() cannot run statements with values bound at execution (expanding IN)")
        defaults = [c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
        if defaults:
            raise ValueError(f"together() needs every column with a Python default given: {defaults}")
        found = _compiled[key] = (statement, compiled)
    return found[1]


def _values(params: dict) -> dict:
    """What ``UTCDateTime`` does for SQLAlchemy's own statements: aware datetimes only, sent in UTC."""
    out = {}
    for name, value in params.items():
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"naive datetime for {name!r}: times are timezone-aware UTC (models.utcnow)")
            value = value.astimezone(timezone.utc)
        out[name] = value
    return out
