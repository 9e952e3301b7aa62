"""Four eyes on top-ups: an admin may ask for a top-up like anyone, but only another admin may decide it.

Worked scenarios against the wallet service on SQLite and PostgreSQL, and a race between the admin who
asked and another admin deciding the same request at once.
"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from balance.domain.errors import AlreadyProcessed, Forbidden, OwnTopup
from balance.extensions import db
from balance.models import JournalEntry, OutboxEvent, Transaction
from balance.services import wallet
from tests.support.concurrency import race, verify_clean
from tests.support.wallets import (approve, assert_books_clean, balance, new_admin, pay, request_topup,
                                   wallet_row)

RACE_ROUNDS = 10


def decide(transaction_id: str, admin_id: int, approve_it: bool) -> wallet.Result:
    result = wallet.process_topup(wallet.ProcessTopup(transaction_id, admin_id, approve_it, "mine"))
    db.session.rollback()
    return result


def outbox_rows() -> int:
    db.session.rollback()
    return db.session.execute(select(func.count()).select_from(OutboxEvent)).scalar_one()


def assert_untouched_and_pending(transaction_id: str, admin_id: int) -> None:
    db.session.rollback()
    tx = db.session.get(Transaction, transaction_id)
    assert (tx.status, tx.processed_by_id, tx.processed_at, tx.admin_notes, tx.failure_reason) == \
        ("pending", None, None, None, None)
    assert db.session.execute(select(JournalEntry).where(JournalEntry.transaction_id == transaction_id)).first() \
        is None, "no journal entry"
    assert (wallet_row(admin_id).balance, wallet_row(admin_id).seq) == (0, 0)


@pytest.mark.parametrize("approve_it", [True, False], ids=["approving", "rejecting"])
def test_an_admin_deciding_their_own_top_up_is_refused_and_it_stays_pending_with_nothing_moved(ctx, approve_it):
    admin = new_admin()
    tx_id = request_topup(admin, 5_000)
    events_before = outbox_rows()

    with pytest.raises(OwnTopup) as refused:
        decide(tx_id, admin, approve_it)

    assert isinstance(refused.value, Forbidden) and refused.value.code == "own_topup"
    assert "another admin" in refused.value.message
    db.session.rollback()
    assert_untouched_and_pending(tx_id, admin)
    assert outbox_rows() == events_before, "no event about a decision that was not made"
    assert_books_clean()


def test_the_refused_admin_still_cannot_spend_the_money_they_asked_for(ctx):
    admin = new_admin()
    tx_id = request_topup(admin, 5_000)
    with pytest.raises(OwnTopup):
        decide(tx_id, admin, True)

    result = pay(admin, 5_000)

    assert result.insufficient is not None and result.transaction.status == "failed"
    assert balance(admin) == 0


@pytest.mark.parametrize("approve_it, status, credited", [(True, "success", 5_000), (False, "failed", 0)],
                         ids=["approved", "rejected"])
def test_another_admin_decides_an_admins_top_up_as_any_other(ctx, approve_it, status, credited):
    asker, other = new_admin(), new_admin()
    tx_id = request_topup(asker, 5_000)
    with pytest.raises(OwnTopup):
        decide(tx_id, asker, approve_it)

    tx = decide(tx_id, other, approve_it).transaction

    assert (tx.status, tx.processed_by_id) == (status, other)
    assert balance(asker) == credited
    assert_books_clean()


def test_once_another_admin_decided_it_the_asker_is_told_it_was_already_processed(ctx):
    asker, other = new_admin(), new_admin()
    tx_id = request_topup(asker, 5_000)
    approve(tx_id, other)

    with pytest.raises(AlreadyProcessed) as late:
        decide(tx_id, asker, False)

    assert late.value.details == {"status": "success"}
    assert balance(asker) == 5_000


def test_the_asker_racing_another_admin_never_decides_and_the_top_up_is_credited_once_by_the_other(ctx, runner):
    asker, other = new_admin(), new_admin()
    expected = 0
    for round_ in range(RACE_ROUNDS):
        tx_id = request_topup(asker, 100 + round_)
        outcomes = race(ctx, [
            lambda: wallet.process_topup(wallet.ProcessTopup(tx_id, asker, True, "mine")).transaction.id,
            lambda: wallet.process_topup(wallet.ProcessTopup(tx_id, other, True, "checked")).transaction.id,
        ])

        mine, theirs = outcomes
        assert theirs == tx_id, outcomes
        assert isinstance(mine, (OwnTopup, AlreadyProcessed)), outcomes  # refused, whichever ran first
        db.session.rollback()
        tx = db.session.get(Transaction, tx_id)
        assert (tx.status, tx.processed_by_id, tx.admin_notes) == ("success", other, "checked")
        assert len(db.session.execute(select(JournalEntry).where(JournalEntry.transaction_id == tx_id)).all()) == 1
        expected += 100 + round_
        assert balance(asker) == expected
        verify_clean(runner)
    assert wallet_row(asker).seq == RACE_ROUNDS
