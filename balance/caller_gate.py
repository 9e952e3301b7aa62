"""A few of one caller's wallet changes at a time in a worker; the rest wait here, holding no database connection.

A change locks its wallet's row until it commits. While that row is held (a slow
transaction, a psql session someone forgot, a client firing a hundred payments at
once) every further request for it waits on the lock, each holding one of the
worker's pool connections: one account could take the whole pool, and every other
user's requests would wait for a connection. Here a caller's requests to views marked
``locks_a_wallet`` (payments, bookings, top-up decisions) beyond
``CALLER_WRITE_CONCURRENCY`` wait on a semaphore *before* their first statement, for
at most the database's own lock bound (``DATABASE_LOCK_TIMEOUT``), and are then told
to try again. Other requests (reads, asking for a top-up, logging out) lock no wallet
and are never held.

The gate is per worker process, so an account holds at most that many connections
per worker; changes of one wallet serialise on its row anyway, so this costs them
nothing. Entered when the caller is identified (``balance.auth``), left when the
request ends.

One account's places do not stop many accounts stuck at once (a long lock on the
accounts table, say) from taking every connection, and reads would then wait for the
pool too. So the worker's wallet changes together may hold at most all but
``READS_KEPT`` of its pool's connections (``WriterPlaces``), taken after the caller's
place, with the same bound; reads, pages and the gateway keep the rest.

For the same reason a change's body is read before anything else (``_body_first``):
a client that sends its headers and then stalls, or uploads slowly, holds only its
own greenlet, never a place or a pool connection.
"""
from __future__ import annotations

import threading

from flask import current_app, g, request

from .domain.errors import AccountBusy, ServiceBusy

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READS_KEPT = 5  # pool connections of a worker that wallet changes never take: reads, pages, the gateway's


class CallerGates:
    """One bounded semaphore per caller with changes in flight, dropped when the caller's last one leaves."""

    def __init__(self, limit: int, wait_seconds: float):
        self.limit = limit
        self.wait_seconds = wait_seconds or None  # 0: as the database's bound, no limit
        self._lock = threading.Lock()
        self._gates: dict[int, list] = {}  # caller id -> [semaphore, requests holding or waiting for it]

    def enter(self, caller_id: int) -> bool:
        """Take one of the caller's places, waiting for one at most ``wait_seconds``; False if none came free."""
        with self._lock:
            gate = self._gates.get(caller_id)
            if gate is None:
                gate = self._gates[caller_id] = [threading.BoundedSemaphore(self.limit), 0]
            gate[1] += 1
        try:
            acquired = gate[0].acquire(timeout=self.wait_seconds)
        except BaseException:  # the wait was interrupted (a greenlet killed): this request was never counted in
            self._forget(caller_id, gate)
            raise
        if not acquired:
            self._forget(caller_id, gate)
        return acquired

    def leave(self, caller_id: int) -> None:
        gate = self._gates[caller_id]
        gate[0].release()
        self._forget(caller_id, gate)

    def in_flight(self) -> int:
        """Callers with a request holding or waiting for a place (what the gates keep in memory)."""
        return len(self._gates)

    def _forget(self, caller_id: int, gate: list) -> None:
        with self._lock:
            gate[1] -= 1
            if gate[1] == 0:
                del self._gates[caller_id]


class WriterPlaces:
    """The worker's wallet changes holding database connections at once, at most ``limit``."""

    def __init__(self, limit: int, wait_seconds: float):
        self.limit = limit
        self.wait_seconds = wait_seconds or None
        self._places = threading.BoundedSemaphore(limit)

    def enter(self) -> bool:
        return self._places.acquire(timeout=self.wait_seconds)

    def leave(self) -> None:
        self._places.release()


def writer_places(engine_options: dict) -> int | None:
    """All but ``READS_KEPT`` of the pool's connections (at least one); None where the options set no pool size
    (SQLite's: writes there queue on the file's lock) or the pool has no limit (a size of 0, an overflow of -1).
    An overflow not given is SQLAlchemy's default, 10."""
    size, overflow = engine_options.get("pool_size"), engine_options.get("max_overflow", 10)
    if not size or overflow < 0:
        return None
    return max(1, size + overflow - READS_KEPT)


def locks_a_wallet(view):
    """Mark a view whose change locks a wallet row: its requests wait for one of the caller's places."""
    view.locks_a_wallet = True
    return view


def init_app(app) -> None:
    app.extensions["caller_gates"] = CallerGates(app.config["CALLER_WRITE_CONCURRENCY"],
                                                 app.config["DATABASE_LOCK_TIMEOUT"])
    limit = writer_places(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    app.extensions["writer_places"] = WriterPlaces(limit, app.config["DATABASE_LOCK_TIMEOUT"]) if limit else None

    @app.before_request
    def _body_first():
        """The whole body (at most MAX_CONTENT_LENGTH, else 413 here) before the caller is looked up."""
        if request.method not in SAFE_METHODS:
            request.get_data(cache=True)

    @app.teardown_request
    def _leave(_error=None):
        if g.pop("writer_place", False):
            app.extensions["writer_places"].leave()
        caller_id = g.pop("gated_caller", None)
        if caller_id is not None:
            app.extensions["caller_gates"].leave(caller_id)


def enter_for_request(caller_id: int) -> None:
    """Before the first statement of a request that locks a wallet: wait for one of the caller's places, or 503."""
    view = current_app.view_functions.get(request.endpoint)
    if not getattr(view, "locks_a_wallet", False) or "gated_caller" in g:
        return
    if not current_app.extensions["caller_gates"].enter(caller_id):
        raise AccountBusy("this account's earlier requests are still being processed; please try again")
    g.gated_caller = caller_id
    places = current_app.extensions.get("writer_places")
    if places is not None:
        if not places.enter():
            raise ServiceBusy("the service is busy with other changes; please try again")
        g.writer_place = True
