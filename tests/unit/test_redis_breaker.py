"""The Redis breaker: after a failure the request path leaves Redis alone for a moment, then one call finds out."""
from __future__ import annotations

from balance.realtime.breaker import RedisBreaker


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_closed_breaker_lets_every_call_through():
    breaker = RedisBreaker(clock=Clock())
    assert all(breaker.allows() for _ in range(5)) and breaker.closed and breaker.skipped == 0


def test_after_a_failure_calls_are_skipped_for_the_cooldown_then_one_call_at_a_time_finds_out():
    clock = Clock()
    breaker = RedisBreaker(cooldown=1.0, clock=clock)
    breaker.failed()
    assert [breaker.allows() for _ in range(3)] == [False, False, False]
    clock.now += 1.01
    assert [breaker.allows() for _ in range(3)] == [True, False, False], "one probe; the others keep skipping"
    breaker.succeeded()
    assert breaker.closed and breaker.allows() and breaker.allows()
    assert (breaker.skipped, breaker.opened) == (5, 1)


def test_a_probe_that_fails_opens_it_for_another_cooldown():
    clock = Clock()
    breaker = RedisBreaker(cooldown=1.0, clock=clock)
    breaker.failed()
    clock.now += 1.5
    assert breaker.allows()
    breaker.failed()
    assert not breaker.allows()
    clock.now += 1.01
    assert breaker.allows() and breaker.opened == 1, "still the same outage"


def test_a_probe_that_never_reports_back_frees_the_turn_after_a_while():
    """A greenlet killed during its call reports neither way: the breaker must not stay half-open for ever."""
    clock = Clock()
    breaker = RedisBreaker(cooldown=1.0, probe_gives_up=10.0, clock=clock)
    breaker.failed()
    clock.now += 2
    assert breaker.allows()
    clock.now += 5
    assert not breaker.allows()
    clock.now += 6
    assert breaker.allows()
