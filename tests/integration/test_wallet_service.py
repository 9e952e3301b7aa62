"""Worked scenarios against the services: what each use case writes to the books, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import timezone

import pytest
from sqlalchemy import select

from balance.domain import events as ev
from balance.domain.errors import AlreadyProcessed, IdempotencyKeyReused, NotFound
from balance.extensions import db
from balance.models import Account, JournalEntry, Posting, Transaction
from balance.services import ledger_store, wallet
from tests.support.wallets import (approve, assert_books_clean, balance, fund, new_admin, new_user, pay, posted_sum,
                                   postings_of, request_topup, transactions_of, wallet_row)


def entry_for(transaction_id: str) -> JournalEntry:
    return db.session.execute(select(JournalEntry).where(JournalEntry.transaction_id == transaction_id)).scalar_one()


def system_account(code: str) -> Account:
    return db.session.execute(select(Account).where(Account.code == f"{code}:USD")).scalar_one()


def test_a_new_user_has_an_empty_wallet_at_seq_zero_in_the_configured_currency(ctx):
    user = new_user()
    account = wallet_row(user)
    assert (account.kind, account.balance, account.seq, account.currency) == ("wallet", 0, 0, "USD")
    assert account.updated_at.tzinfo is not None


def test_requesting_a_top_up_records_it_pending_and_moves_no_money(ctx):
    user = new_user()
    result = wallet.request_topup(wallet.RequestTopup(user, 5000, "Test topup"))
    tx = result.transaction
    assert (tx.type, tx.status, tx.amount, tx.description) == ("topup", "pending", 5000, "Test topup")
    assert (tx.balance_snapshot, tx.processed_at, tx.failure_reason) == (None, None, None)
    assert [type(e) for e in result.events] == [ev.TransactionCreated, ev.TopupRequested]
    assert db.session.execute(select(JournalEntry)).first() is None
    assert (balance(user), wallet_row(user).seq) == (0, 0)


def test_approving_a_top_up_posts_one_balanced_entry_that_credits_the_wallet(ctx):
    user, admin = new_user(), new_admin()
    tx_id = request_topup(user, 5000)

    result = approve(tx_id, admin)

    tx = result.transaction
    assert (tx.status, tx.balance_snapshot, tx.processed_by_id, tx.admin_notes) == ("success", 5000, admin, "ok")
    assert tx.processed_at is not None and tx.processed_at.tzinfo is not None
    entry = entry_for(tx_id)
    assert (entry.reference, entry.kind) == (f"topup:{tx_id}", "topup")
    wallet_account, funding = wallet_row(user), system_account("topup_funding")
    legs = {p.account_id: p for p in db.session.execute(select(Posting).where(Posting.entry_id == entry.id)).scalars()}
    assert {k: v.amount for k, v in legs.items()} == {wallet_account.id: 5000, funding.id: -5000}
    assert (legs[wallet_account.id].balance_after, legs[wallet_account.id].account_seq) == (5000, 1)
    assert (wallet_account.balance, wallet_account.seq, posted_sum(funding.id)) == (5000, 1, -5000)
    assert (legs[funding.id].balance_after, legs[funding.id].account_seq) == (None, None), "house legs keep no cache"
    changed, completed, processed = result.events
    assert changed == ev.BalanceChanged(user, tx_id, "topup", 5000, 0, 5000, 1, changed.at)
    assert completed == ev.TransactionCompleted(user, tx_id, "topup", 5000, 5000, changed.at)
    assert processed == ev.TopupProcessed(user, tx_id, "success", changed.at)
    assert_books_clean()


def test_rejecting_a_top_up_records_who_and_why_and_moves_nothing(ctx):
    user, admin = new_user(), new_admin()
    tx_id = request_topup(user, 5000)

    result = wallet.process_topup(wallet.ProcessTopup(tx_id, admin, False, "no receipt"))

    tx = result.transaction
    assert (tx.status, tx.failure_reason, tx.admin_notes, tx.processed_by_id) == ("failed", "rejected", "no receipt",
                                                                                 admin)
    assert tx.balance_snapshot is None and tx.processed_at is not None
    assert [type(e) for e in result.events] == [ev.TransactionFailed, ev.TopupProcessed]
    assert result.events[0].reason == "no receipt"
    assert (balance(user), wallet_row(user).seq) == (0, 0)
    assert db.session.execute(select(JournalEntry)).first() is None


@pytest.mark.parametrize("first_decision", [True, False], ids=["after approval", "after rejection"])
@pytest.mark.parametrize("second_decision", [True, False], ids=["approve again", "reject again"])
def test_a_second_decision_on_a_top_up_is_refused_and_credits_at_most_once(ctx, first_decision, second_decision):
    user, admin, other_admin = new_user(), new_admin(), new_admin()
    tx_id = request_topup(user, 2500)
    wallet.process_topup(wallet.ProcessTopup(tx_id, admin, first_decision))

    with pytest.raises(AlreadyProcessed) as refused:
        wallet.process_topup(wallet.ProcessTopup(tx_id, other_admin, second_decision, "too late"))

    first_status = "success" if first_decision else "failed"
    assert refused.value.details == {"status": first_status}
    tx = db.session.get(Transaction, tx_id)
    assert (tx.status, tx.processed_by_id) == (first_status, admin)
    assert tx.admin_notes is None
    assert balance(user) == (2500 if first_decision else 0)
    assert_books_clean()


@pytest.mark.parametrize("transaction_id", ["no-such-id", "", "x" * 200, "00000000-0000-0000-0000-000000000000"])
def test_deciding_an_unknown_top_up_is_not_found(ctx, transaction_id):
    admin = new_admin()
    with pytest.raises(NotFound):
        wallet.process_topup(wallet.ProcessTopup(transaction_id, admin, True))


def test_a_payment_cannot_be_decided_as_if_it_were_a_top_up(ctx):
    user, admin = new_user(), new_admin()
    fund(user, admin, 1000)
    payment_id = pay(user, 400).transaction.id
    with pytest.raises(NotFound):
        wallet.process_topup(wallet.ProcessTopup(payment_id, admin, True))
    assert balance(user) == 600


def test_a_payment_debits_the_wallet_and_credits_revenue_in_one_entry(ctx):
    user, admin = new_user(), new_admin()
    fund(user, admin, 5000)

    result = pay(user, 1250, description="Room 101")

    tx = result.transaction
    assert (tx.type, tx.status, tx.amount, tx.balance_snapshot, tx.description) == ("payment", "success", 1250, 3750,
                                                                                    "Room 101")
    assert result.insufficient is None
    entry = entry_for(tx.id)
    assert (entry.reference, entry.kind) == (f"payment:{tx.id}", "payment")
    revenue = system_account("payment_revenue")
    assert (balance(user), wallet_row(user).seq, posted_sum(revenue.id), revenue.seq) == (3750, 2, 1250, 0)
    changed, completed = result.events
    assert changed == ev.BalanceChanged(user, tx.id, "payment", 1250, 5000, 3750, 2, changed.at)
    assert completed == ev.TransactionCompleted(user, tx.id, "payment", 1250, 3750, changed.at)
    assert_books_clean()


def test_paying_exactly_the_whole_balance_leaves_zero(ctx):
    user, admin = new_user(), new_admin()
    fund(user, admin, 999)
    assert pay(user, 999).transaction.balance_snapshot == 0
    assert balance(user) == 0
    assert_books_clean()


def test_a_payment_the_wallet_cannot_cover_is_recorded_as_failed_and_moves_nothing(ctx):
    user, admin = new_user(), new_admin()
    fund(user, admin, 3750)

    result = pay(user, 4000)

    tx = result.transaction
    assert (tx.status, tx.failure_reason, tx.balance_snapshot) == ("failed", "insufficient_balance", None)
    assert tx.processed_at is not None
    assert result.insufficient == {"required": 4000, "current": 3750, "shortfall": 250}
    failed, insufficient = result.events
    assert failed == ev.TransactionFailed(user, tx.id, "payment", 4000, "insufficient_balance", failed.at)
    assert insufficient == ev.BalanceInsufficient(user, tx.id, 4000, 3750, failed.at)
    assert (balance(user), wallet_row(user).seq) == (3750, 1)
    assert db.session.execute(select(JournalEntry).where(JournalEntry.transaction_id == tx.id)).first() is None
    assert_books_clean()


def test_a_brand_new_wallet_paying_anything_runs_short_by_the_full_amount(ctx):
    user = new_user()
    assert pay(user, 1).insufficient == {"required": 1, "current": 0, "shortfall": 1}
    assert_books_clean()


def test_worked_scenario_every_change_is_a_posting_and_the_cache_equals_their_sum(ctx):
    """Two users, top-ups approved and rejected, payments that fit and one that does not."""
    alice, bob, admin = new_user(), new_user(), new_admin()
    fund(alice, admin, 10_000)
    fund(bob, admin, 2_500)
    rejected = request_topup(alice, 99_999)
    wallet.process_topup(wallet.ProcessTopup(rejected, admin, False))
    pay(alice, 1_999)
    pay(alice, 1)
    pay(bob, 2_501)  # short by one cent
    pay(bob, 2_500)
    fund(alice, admin, 50)

    assert (balance(alice), balance(bob)) == (10_000 - 1_999 - 1 + 50, 0)
    report = assert_books_clean()
    assert (report.entries, report.postings, report.total) == (6, 12, 0)
    for account in db.session.execute(select(Account).where(Account.kind == "wallet")).scalars():
        postings = postings_of(account.id)
        assert account.balance == posted_sum(account.id)
        assert account.seq == len(postings)
        assert [p.account_seq for p in postings] == list(range(1, account.seq + 1)), "seq is +1 per change"
        running = 0
        for p in postings:
            running += p.amount
            assert p.balance_after == running, "each posting records the balance it produced"
    alice_seqs = [p.account_seq for p in postings_of(wallet_row(alice).id)]
    assert alice_seqs == [1, 2, 3, 4]
    assert {t.status for t in transactions_of(bob)} == {"success", "failed"}


def test_the_house_accounts_are_created_once_per_currency_on_first_use(ctx):
    user, admin = new_user(), new_admin()
    fund(user, admin, 100)
    fund(user, admin, 100)
    pay(user, 50)
    codes = db.session.execute(select(Account.code).where(Account.kind == "system")).scalars().all()
    assert sorted(codes) == ["payment_revenue:USD", "topup_funding:USD"]


def test_a_user_reads_only_their_own_transactions(ctx):
    alice, bob, admin = new_user(), new_user(), new_admin()
    tx_id = fund(alice, admin, 100)
    assert wallet.get_transaction(alice, tx_id).id == tx_id
    with pytest.raises(NotFound):
        wallet.get_transaction(bob, tx_id)
    with pytest.raises(NotFound):
        wallet.get_transaction(alice, "missing")


def test_timestamps_come_back_from_the_database_as_aware_utc(ctx):
    user, admin = new_user(), new_admin()
    tx_id = fund(user, admin, 100)
    db.session.rollback()
    tx = db.session.get(Transaction, tx_id)
    for at in (tx.created_at, tx.processed_at, wallet_row(user).updated_at):
        assert at.utcoffset() is not None and at.astimezone(timezone.utc).utcoffset().total_seconds() == 0


# --- idempotency at the service level ---------------------------------------------------------------------------

def test_a_keyed_payment_repeated_returns_the_first_outcome_and_moves_money_once(ctx):
    user, admin = new_user(), new_admin()
    fund(user, admin, 5000)
    first = pay(user, 1000, key="k-1")
    again = pay(user, 1000, key="k-1")
    assert (first.replayed, again.replayed) == (False, True)
    assert again.transaction.id == first.transaction.id
    assert again.events == []
    assert balance(user) == 4000
    assert len(transactions_of(user)) == 2


def test_a_keyed_short_payment_repeated_is_still_short_even_after_a_top_up(ctx):
    user, admin = new_user(), new_admin()
    first = pay(user, 1000, key="short")
    fund(user, admin, 5000)
    again = pay(user, 1000, key="short")
    assert again.replayed and again.transaction.id == first.transaction.id
    assert again.insufficient == first.insufficient == {"required": 1000, "current": 0, "shortfall": 1000}
    assert balance(user) == 5000


def test_a_key_reused_for_a_different_request_is_refused(ctx):
    user, admin = new_user(), new_admin()
    fund(user, admin, 5000)
    pay(user, 1000, key="k")
    with pytest.raises(IdempotencyKeyReused):
        pay(user, 2000, key="k")
    with pytest.raises(IdempotencyKeyReused):
        request_topup(user, 1000, key="k")
    assert balance(user) == 4000


def test_the_same_key_for_two_users_is_two_separate_requests(ctx):
    alice, bob = new_user(), new_user()
    a = request_topup(alice, 100, key="shared")
    b = request_topup(bob, 100, key="shared")
    assert a != b
    assert [t.id for t in transactions_of(alice)] == [a]
    assert [t.id for t in transactions_of(bob)] == [b]


def test_a_keyed_top_up_request_repeated_creates_one_pending_top_up(ctx):
    user = new_user()
    assert request_topup(user, 700, key="t") == request_topup(user, 700, key="t")
    assert len(transactions_of(user)) == 1


def test_verify_counts_what_it_checked(ctx):
    user, admin = new_user(), new_admin()
    fund(user, admin, 100)
    pay(user, 40)
    report = ledger_store.verify()
    assert (report.accounts, report.entries, report.postings, report.total) == (4, 2, 4, 0)
    assert report.clean
