"""A circuit breaker for the Redis calls on a request's path (the balance cache and the publish after commit).

Redis is never the truth here: a cache miss reads the database, and a change whose
publish fails is published by the outbox relay. So a Redis that fails costs nothing but
the wait for it; a Redis that is down fails at once, but one that is frozen, or cut off
by a partition that drops packets, makes every call wait out its socket timeout (2 s),
and a request that reads the cache and publishes waited for two. After a failure the
breaker opens: for ``cooldown`` seconds the request path does not call Redis at all and
takes the fallback at once; then one call at a time is let through to see whether it
is back (a greenlet that dies during it frees the turn after ``probe_gives_up``).
"""
from __future__ import annotations

import threading
import time


class RedisBreaker:
    def __init__(self, cooldown: float = 1.0, probe_gives_up: float = 10.0, clock=time.monotonic):
        self.cooldown = cooldown
        self.probe_gives_up = probe_gives_up
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until: float | None = None  # None: closed, calls go through
        self._probe_since: float | None = None
        self.skipped = 0  # calls not made because the breaker was open
        self.opened = 0  # times it opened

    @property
    def closed(self) -> bool:
        return self._open_until is None

    def allows(self) -> bool:
        """Whether to make the call; when it is made, report it with ``succeeded`` or ``failed``."""
        if self._open_until is None:
            return True
        with self._lock:
            now = self._clock()
            if self._open_until is None:
                return True
            probing = self._probe_since is not None and now - self._probe_since < self.probe_gives_up
            if now < self._open_until or probing:
                self.skipped += 1
                return False
            self._probe_since = now  # this caller finds out whether Redis is back; the others keep skipping
            return True

    def succeeded(self) -> None:
        if self._open_until is not None:
            with self._lock:
                self._open_until = self._probe_since = None

    def failed(self) -> None:
        with self._lock:
            if self._open_until is None:
                self.opened += 1
            self._open_until = self._clock() + self.cooldown
            self._probe_since = None
