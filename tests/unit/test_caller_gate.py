"""The caller gate: a few places per caller, waiting bounded, callers independent, nothing kept once they leave."""
from __future__ import annotations

import threading
import time

import pytest

from balance.caller_gate import CallerGates, writer_places


def test_a_caller_gets_as_many_places_as_the_limit_and_the_next_waits_out_the_bound_then_is_refused():
    gates = CallerGates(limit=2, wait_seconds=0.2)
    assert gates.enter(7) and gates.enter(7)
    started = time.monotonic()
    assert gates.enter(7) is False
    assert 0.2 <= time.monotonic() - started < 2


def test_another_caller_is_not_held_by_a_full_gate():
    gates = CallerGates(limit=1, wait_seconds=0.2)
    assert gates.enter(7)
    started = time.monotonic()
    assert gates.enter(8)
    assert time.monotonic() - started < 0.1


def test_a_waiting_request_takes_the_place_its_callers_earlier_request_leaves():
    gates = CallerGates(limit=1, wait_seconds=10)
    assert gates.enter(7)
    got = []
    waiting = threading.Thread(target=lambda: got.append(gates.enter(7)))
    waiting.start()
    time.sleep(0.1)
    assert got == [], "it waits while the place is taken"
    gates.leave(7)
    waiting.join(5)
    assert got == [True]


def test_callers_who_left_are_forgotten_also_after_a_refusal():
    gates = CallerGates(limit=1, wait_seconds=0.05)
    assert gates.enter(7) and gates.enter(8)
    assert gates.enter(7) is False
    assert gates.in_flight() == 2
    gates.leave(7)
    gates.leave(8)
    assert gates.in_flight() == 0
    assert gates.enter(7), "a refused request did not keep a place"


def test_a_zero_bound_waits_as_long_as_it_takes():
    gates = CallerGates(limit=1, wait_seconds=0)
    assert gates.enter(7)
    threading.Timer(0.2, gates.leave, args=(7,)).start()
    started = time.monotonic()
    assert gates.enter(7)
    assert time.monotonic() - started >= 0.15


@pytest.mark.parametrize(("options", "places"), [
    ({"pool_size": 10, "max_overflow": 20}, 25),  # PostgreSQL's pool (database.engine_options)
    ({"pool_size": 7, "max_overflow": 0}, 2),
    ({"pool_size": 1, "max_overflow": 0}, 1),  # never none at all
    ({"pool_size": 5}, 10),  # SQLAlchemy's default overflow, 10
    ({"pool_size": 5, "max_overflow": -1}, None),  # no limit: nothing to keep
    ({"pool_size": 0, "max_overflow": 0}, None),  # a size of 0 is no limit too
    ({"connect_args": {"timeout": 30}}, None),  # SQLite's: writes queue on the file's lock
], ids=["postgresql", "small", "tiny", "default-overflow", "unlimited-overflow", "unlimited-size", "sqlite"])
def test_changes_may_take_all_of_a_workers_pool_but_the_connections_kept_for_reads(options, places):
    assert writer_places(options) == places
