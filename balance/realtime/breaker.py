"""A circuit breaker for the Redis calls on a request's path (the balance cache and the publish after commit).

Redis is never the truth here: a cache miss reads the database, and a change whose
publish fails is published by the outbox relay. So a Redis that fails costs nothing but
the wait for it. A Redis that is down fails at once (connection refused); one that is
frozen, or cut off by a partition that drops packets, makes every call wait out its
socket timeout (2 s), and a request that reads the cache and publishes waited for two.
So after a call *times out* the breaker opens: for ``cooldown`` seconds the request
path does not call Redis at all and takes the fallback at once; then one call at a time
is let through to see whether Redis answers again. Any answer, even an error, closes
it; only a timeout keeps it open (an error that comes at once costs no wait, and
skipping calls to a Redis that answers would only leave other workers' caches stale).
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import redis


class RedisBreaker:
    def __init__(self, cooldown: float = 1.0, probe_gives_up: float = 5.0, clock=time.monotonic):
        self.cooldown = cooldown
        self.probe_gives_up = probe_gives_up  # a probe that never reported (its process state lost) frees the turn
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
        """Whether to make the call; a call made goes inside ``attempt``, which reports how it went."""
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

    @contextmanager
    def attempt(self):
        """Wrap one allowed call: a timeout opens the breaker, any answer (an error too) closes it, and a call cut
        short by something else (a greenlet's own timeout, its kill) only gives the turn to the next caller."""
        try:
            yield
        except redis.TimeoutError:
            self.timed_out()
            raise
        except redis.RedisError:
            self.answered()
            raise
        except BaseException:
            self._release()
            raise
        self.answered()

    def answered(self) -> None:
        if self._open_until is not None:
            with self._lock:
                self._open_until = self._probe_since = None

    def timed_out(self) -> None:
        with self._lock:
            if self._open_until is None:
                self.opened += 1
            self._open_until = self._clock() + self.cooldown
            self._probe_since = None

    def _release(self) -> None:
        with self._lock:
            self._probe_since = None
