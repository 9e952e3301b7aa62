"""The outbox relay's log while the database is away: the traceback once, a line per failed pass, the recovery."""
from __future__ import annotations

import contextlib
import logging

import pytest

from balance.realtime import bus


class Stop(BaseException):
    """Ends relay_forever's loop after the passes under test."""


class App:
    def app_context(self):
        return contextlib.nullcontext()


def test_a_relay_failing_pass_after_pass_logs_one_traceback_then_a_line_each_then_its_recovery(monkeypatch, caplog):
    outcomes = iter([RuntimeError("connection refused\n(details)"), RuntimeError("connection refused"),
                     RuntimeError("connection refused"), None, None])
    sleeps = iter(range(5))

    def sleep(_):
        if next(sleeps, None) is None:
            raise Stop

    def relay_once(*_):
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(bus.time, "sleep", sleep)
    monkeypatch.setattr(bus, "relay_once", relay_once)
    with caplog.at_level(logging.INFO, logger="BalanceGateway"), pytest.raises(Stop):
        bus.relay_forever(App(), None, None, 1.0, 2.0)

    said = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert said == [
        ("ERROR", "outbox relay pass failed; will try again every 1 s", True),
        ("WARNING", "outbox relay pass failed again (2 in a row): connection refused", False),
        ("WARNING", "outbox relay pass failed again (3 in a row): connection refused", False),
        ("INFO", "outbox relay passes work again after 3 failed", False),
    ]
