"""How a long-running worker treats Python's garbage collector (and gevent's greenlet records), and what it costs.

A gevent worker holding hundreds of sockets has a large heap; a full collection of it
stops every greenlet at once, so every socket and request of the worker waits (the
benchmark saw 150-200 ms stalls). Serving entrypoints call ``settle_heap`` once the app
is built: what exists then (modules, the app, SQLAlchemy's compiled statements) lives
as long as the process, so it is moved out of the collector's sight (``gc.freeze``),
and young collections run less often. ``gc_stats`` reports collections and pauses at
``GET /metrics``.
"""
from __future__ import annotations

import gc
import time

import gevent

YOUNG_THRESHOLD = 10_000  # allocations between young collections (Python's default is 700)


class GcWatch:
    """Counts collections per generation and the time they stopped the process."""

    def __init__(self):
        self.collections = [0, 0, 0]
        self.pause_total = 0.0
        self.pause_max = 0.0
        self.pauses_over_10ms = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.collections[info.get("generation", 0)] += 1
        self.pause_total += took
        self.pause_max = max(self.pause_max, took)
        if took > 0.010:
            self.pauses_over_10ms += 1

    def as_dict(self) -> dict:
        return {"collections": list(self.collections), "pause_total_ms": round(self.pause_total * 1000, 1),
                "pause_max_ms": round(self.pause_max * 1000, 2), "pauses_over_10ms": self.pauses_over_10ms}


_watch: GcWatch | None = None


def lean_greenlets() -> None:
    """Stop gevent recording, for every greenlet spawned, which greenlet spawned it and the stack it was spawned from.

    That record (``track_greenlet_tree``, on by default, only read by debugging tools)
    walks and keeps the spawner's frames for every greenlet: gunicorn's gevent worker
    spawns one per connection, engine.io one per incoming packet. Measured with
    ``bench/floor.py``: a request's worker CPU falls by ~0.55 ms (healthz 1.47 -> 0.90 ms
    on the slow box), and the young generation stops filling with its frame records.
    """
    gevent.config.track_greenlet_tree = False


def settle_heap() -> None:
    """Freeze what the process has built so far and collect the young generation less often."""
    global _watch
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    if _watch is None:
        _watch = GcWatch()
        gc.callbacks.append(_watch)


def gc_stats() -> dict | None:
    """Collections and pauses since ``settle_heap`` (None in a process that never called it: tests, CLI)."""
    return _watch.as_dict() if _watch is not None else None
