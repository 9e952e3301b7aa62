"""Idempotency keys are kept for IDEMPOTENCY_RETENTION_HOURS: within it a retry gets the first answer; after it,
the key's memory is gone and a retry is a new request. The ledger keeps everything."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from balance.extensions import db
from balance import housekeeping
from balance.housekeeping import prune_once, prunings
from balance.models import IdempotencyKey, utcnow
from balance.services import idempotency
from tests.support.wallets import assert_books_clean, balance, fund, new_admin, new_user, pay

RETENTION = timedelta(hours=720)


def keys() -> list[str]:
    return list(db.session.execute(select(IdempotencyKey.key).order_by(IdempotencyKey.id)).scalars())


def age(names: list[str], by: timedelta) -> None:
    db.session.execute(update(IdempotencyKey).where(IdempotencyKey.key.in_(names))
                       .values(created_at=utcnow() - by))
    db.session.commit()


def test_keys_past_the_retention_are_pruned_oldest_first_a_batch_at_a_time_and_newer_ones_stay(ctx):
    admin, user = new_admin(), new_user()
    fund(user, admin, 1000)
    for n in range(5):
        pay(user, 10, key=f"room-{n}")
    age(["room-0", "room-1", "room-2"], RETENTION + timedelta(hours=1))

    assert [idempotency.prune_older_than(RETENTION, batch=2) for _ in range(3)] == [2, 1, 0]
    assert keys() == ["room-3", "room-4"]
    assert balance(user) == 950 and assert_books_clean()


def test_within_the_retention_a_retry_is_the_first_answer_and_after_it_a_new_payment(ctx):
    admin, user = new_admin(), new_user()
    fund(user, admin, 1000)
    first = pay(user, 100, key="room-9")
    kept = pay(user, 100, key="room-9")
    assert kept.replayed and kept.transaction.id == first.transaction.id and balance(user) == 900

    age(["room-9"], RETENTION + timedelta(minutes=1))
    idempotency.prune_older_than(RETENTION)
    later = pay(user, 100, key="room-9")

    assert not later.replayed and later.transaction.id != first.transaction.id
    assert balance(user) == 800 and assert_books_clean()


def test_the_workers_pass_prunes_each_table_whose_retention_is_set_and_one_failing_does_not_stop_the_other(
        ctx, caplog):
    admin, user = new_admin(), new_user()
    fund(user, admin, 1000)
    pay(user, 10, key="old")
    age(["old"], timedelta(days=40))
    chosen = prunings({"OUTBOX_RETENTION_HOURS": 24, "IDEMPOTENCY_RETENTION_HOURS": 720})
    assert [what for what, _, _ in chosen] == ["published outbox rows", "idempotency keys"]

    def broken():
        raise RuntimeError("the database went away")

    prune_once([("published outbox rows", broken, 1000), *chosen[1:]])

    assert keys() == [] and "pruning published outbox rows failed" in caplog.text


def test_retention_zero_keeps_that_table_forever():
    assert [what for what, _, _ in prunings({"OUTBOX_RETENTION_HOURS": 24, "IDEMPOTENCY_RETENTION_HOURS": 0})] == [
        "published outbox rows"]
    assert prunings({"OUTBOX_RETENTION_HOURS": 0, "IDEMPOTENCY_RETENTION_HOURS": 0}) == []


def test_a_backlog_is_pruned_over_several_passes_not_in_one_long_run(monkeypatch):
    """The first pass after an upgrade may find months of keys: each pass deletes at most BATCHES_PER_PASS batches."""
    monkeypatch.setattr(housekeeping.time, "sleep", lambda _: None)
    calls = []

    def full_batch():
        calls.append(1)
        return 1000

    prune_once([("idempotency keys", full_batch, 1000)])
    assert len(calls) == housekeeping.BATCHES_PER_PASS
