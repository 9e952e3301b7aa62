"""Races that really run at once, for the integration tests: threads released together by a barrier."""
from __future__ import annotations

import threading

from balance.extensions import db

TIMEOUT = 60


def race(app, calls: list):
    """Run every call in its own thread and app context, all released at once; return results or exceptions."""
    barrier = threading.Barrier(len(calls), timeout=TIMEOUT)
    outcomes: list = [None] * len(calls)

    def worker(i: int, call):
        with app.app_context():
            db.session.connection()  # check out a connection before the start line, not after it
            db.session.rollback()
            try:
                barrier.wait()
                outcomes[i] = call()
            except Exception as exc:  # noqa: BLE001 - the test inspects what each racer got
                outcomes[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i, c), name=f"racer-{i}") for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a racer hung"
    return outcomes


def verify_clean(runner):
    db.session.rollback()
    result = runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert "ledger OK" in result.output
