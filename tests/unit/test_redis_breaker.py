"""The Redis breaker: after a call times out the request path leaves Redis alone for a moment, then one call
finds out whether it answers again."""
from __future__ import annotations

import pytest
import redis

from balance.realtime.breaker import RedisBreaker
from tests.support.clock import Clock


class GreenletTimeout(BaseException):
    """What gevent raises in a greenlet whose own timeout fires: not an ``Exception``."""


def call(breaker: RedisBreaker, outcome: BaseException | None = None) -> bool:
    """One call as the cache makes it: skipped, or made inside ``attempt`` ending with ``outcome``."""
    if not breaker.allows():
        return False
    try:
        with breaker.attempt():
            if outcome is not None:
                raise outcome
    except BaseException:  # noqa: BLE001 - the caller's fallback; the breaker has been told
        pass
    return True


def test_a_closed_breaker_lets_every_call_through():
    breaker = RedisBreaker(clock=Clock(100.0))
    assert all(call(breaker) for _ in range(5)) and breaker.closed and breaker.skipped == 0


def test_after_a_timeout_calls_are_skipped_for_the_cooldown_then_one_call_at_a_time_finds_out():
    clock = Clock(100.0)
    breaker = RedisBreaker(cooldown=1.0, clock=clock)
    assert call(breaker, redis.TimeoutError("Timeout reading from socket"))
    assert [breaker.allows() for _ in range(3)] == [False, False, False]
    clock.now += 1.01
    assert breaker.allows(), "the probe"
    assert [breaker.allows() for _ in range(2)] == [False, False], "the others keep skipping while it finds out"
    with breaker.attempt():
        pass  # it answered
    assert breaker.closed and call(breaker) and call(breaker)
    assert (breaker.skipped, breaker.opened) == (5, 1)


@pytest.mark.parametrize("error", [redis.ConnectionError("Error 111 connecting: Connection refused"),
                                   redis.ResponseError("OOM command not allowed")], ids=["refused", "an error reply"])
def test_an_error_that_comes_at_once_does_not_open_it(error):
    """No wait to save, and skipping calls to a Redis that answers would leave other workers' caches stale."""
    breaker = RedisBreaker(clock=Clock(100.0))
    assert call(breaker, error)
    assert breaker.closed and call(breaker) and breaker.opened == 0


@pytest.mark.parametrize("error", [redis.ConnectionError("refused"), redis.ResponseError("LOADING")],
                         ids=["refused", "an error reply"])
def test_a_probe_answered_with_an_error_closes_it(error):
    clock = Clock(100.0)
    breaker = RedisBreaker(cooldown=1.0, clock=clock)
    call(breaker, redis.TimeoutError())
    clock.now += 1.5
    assert call(breaker, error) and breaker.closed


def test_a_probe_that_times_out_opens_it_for_another_cooldown():
    clock = Clock(100.0)
    breaker = RedisBreaker(cooldown=1.0, clock=clock)
    call(breaker, redis.TimeoutError())
    clock.now += 1.5
    assert call(breaker, redis.TimeoutError())
    assert not breaker.allows()
    clock.now += 1.01
    assert breaker.allows() and breaker.opened == 1, "still the same outage"


def test_a_probe_cut_short_by_its_greenlet_gives_the_turn_to_the_next_call_at_once():
    clock = Clock(100.0)
    breaker = RedisBreaker(cooldown=1.0, clock=clock)
    call(breaker, redis.TimeoutError())
    clock.now += 1.5
    assert call(breaker, GreenletTimeout())
    assert not breaker.closed and breaker.allows(), "nothing learnt: the next call finds out"


def test_a_probe_that_never_reports_back_frees_the_turn_after_a_while():
    clock = Clock(100.0)
    breaker = RedisBreaker(cooldown=1.0, probe_gives_up=5.0, clock=clock)
    call(breaker, redis.TimeoutError())
    clock.now += 2
    assert breaker.allows()  # and its process never says how it went
    clock.now += 3
    assert not breaker.allows()
    clock.now += 2.5
    assert breaker.allows()
