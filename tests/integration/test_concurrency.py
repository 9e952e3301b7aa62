"""Races that really run at once: threads released together by a barrier, each with its own app context,
session and database connection, many rounds on SQLite (a file database, writers queue on ``BEGIN IMMEDIATE``)
and on PostgreSQL (row locks and guarded updates). After every round the books must verify clean.
"""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import event, select

from balance.domain.errors import AlreadyProcessed, IdempotencyKeyReused
from balance.extensions import db
from balance.models import JournalEntry, Posting, Transaction
from balance.services import ledger_store, wallet
from tests.support.concurrency import race, verify_clean
from tests.support.wallets import (approve, assert_books_clean, balance, fund, new_admin, new_user, postings_of,
                                   request_topup, transactions_of, wallet_row)

APPROVAL_ROUNDS = 25  # per database and per number of racing admins
DECISION_ROUNDS = 10  # approve and reject racing each other
PAYMENT_ROUNDS = 8  # PAYERS threads x PAYMENTS_EACH payments, per database
PAYERS, PAYMENTS_EACH = 8, 3
IDEMPOTENT_ROUNDS = 10  # IDEMPOTENT_RACERS identical keyed requests, per database and endpoint
IDEMPOTENT_RACERS = 6

@pytest.mark.parametrize("admins", [2, 4])
def test_admins_approving_the_same_top_up_at_once_credit_it_exactly_once(ctx, runner, admins):
    user = new_user()
    admin_ids = [new_admin() for _ in range(admins)]
    for round_ in range(APPROVAL_ROUNDS):
        tx_id = request_topup(user, 1000 + round_)
        outcomes = race(ctx, [
            (lambda a=a: wallet.process_topup(wallet.ProcessTopup(tx_id, a, True, f"by {a}")).transaction.id)
            for a in admin_ids
        ])

        winners = [o for o in outcomes if o == tx_id]
        losers = [o for o in outcomes if isinstance(o, AlreadyProcessed)]
        assert (len(winners), len(losers)) == (1, admins - 1), outcomes
        assert all(o.details == {"status": "success"} for o in losers)
        db.session.rollback()
        entries = db.session.execute(select(JournalEntry).where(JournalEntry.transaction_id == tx_id)).all()
        assert len(entries) == 1, "credited once"
        tx = db.session.get(Transaction, tx_id)
        assert tx.status == "success" and tx.processed_by_id in admin_ids
        verify_clean(runner)

    credited = sum(1000 + r for r in range(APPROVAL_ROUNDS))
    account = wallet_row(user)
    assert (account.balance, account.seq) == (credited, APPROVAL_ROUNDS)
    assert [p.account_seq for p in postings_of(account.id)] == list(range(1, APPROVAL_ROUNDS + 1))


def test_an_approval_and_a_rejection_at_once_decide_the_top_up_exactly_once(ctx, runner):
    user = new_user()
    approver, rejecter = new_admin(), new_admin()
    expected, decided = 0, Counter()
    for round_ in range(DECISION_ROUNDS):
        tx_id = request_topup(user, 500)
        outcomes = race(ctx, [
            lambda: wallet.process_topup(wallet.ProcessTopup(tx_id, approver, True)).transaction.id,
            lambda: wallet.process_topup(wallet.ProcessTopup(tx_id, rejecter, False)).transaction.id,
        ])
        assert sorted(type(o).__name__ for o in outcomes) == ["AlreadyProcessed", "str"], outcomes
        db.session.rollback()
        tx = db.session.get(Transaction, tx_id)
        approved = outcomes[0] == tx_id
        assert tx.status == ("success" if approved else "failed")
        assert tx.processed_by_id == (approver if approved else rejecter)
        expected += 500 if approved else 0
        decided[tx.status] += 1
        assert balance(user) == expected
        verify_clean(runner)
    assert sum(decided.values()) == DECISION_ROUNDS


def test_many_payments_at_once_never_overdraw_and_the_successes_sum_to_what_was_spent(ctx, runner):
    admin = new_admin()
    amounts = [100 * (1 + (i % 5)) for i in range(PAYERS * PAYMENTS_EACH)]  # 1.00 .. 5.00, 72.00 asked in all
    starting = sum(amounts) // 2
    total_succeeded = 0
    for _ in range(PAYMENT_ROUNDS):
        user = new_user()
        fund(user, admin, starting)

        def payer(mine):
            return [wallet.pay(wallet.MakePayment(user, amount, "race")) for amount in mine]

        outcomes = race(ctx, [(lambda i=i: [(r.transaction.id, r.transaction.amount, r.insufficient)
                                            for r in payer(amounts[i::PAYERS])])
                              for i in range(PAYERS)])

        assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
        results = [r for per_thread in outcomes for r in per_thread]
        assert len(results) == len(amounts)
        spent = sum(amount for _, amount, short in results if short is None)
        final = balance(user)
        assert final >= 0
        assert final == starting - spent
        assert spent <= starting
        refused = [(amount, short) for _, amount, short in results if short is not None]
        assert refused, "the balance covers only some payments, so some must be refused"
        assert all(amount > final for amount, _ in refused), "refused although the money was there at the end"

        rows = {t.id: t for t in transactions_of(user) if t.type == "payment"}
        assert len(rows) == len(amounts)
        for tx_id, amount, short in results:
            row = rows[tx_id]
            if short is None:
                assert (row.status, row.failure_reason) == ("success", None)
            else:
                assert (row.status, row.failure_reason) == ("failed", "insufficient_balance")
                assert short["required"] == amount and short["shortfall"] == amount - short["current"] > 0
        account = wallet_row(user)
        postings = postings_of(account.id)
        assert account.seq == 1 + sum(1 for *_, short in results if short is None)
        assert [p.account_seq for p in postings] == list(range(1, account.seq + 1))
        assert all(p.balance_after >= 0 for p in postings), "the wallet was never below zero at any step"
        balances_seen = {p.balance_after for p in postings}
        assert all(short["current"] in balances_seen for _, short in refused), \
            "each refusal quoted a balance the wallet really had"
        snapshots = sorted(rows[tx_id].balance_snapshot for tx_id, _, short in results if short is None)
        assert snapshots == sorted(p.balance_after for p in postings[1:])
        total_succeeded += sum(1 for *_, short in results if short is None)
        verify_clean(runner)
    assert total_succeeded > 0


@pytest.mark.parametrize("endpoint", ["payment", "topup"])
def test_identical_keyed_requests_at_once_make_one_transaction_and_all_get_its_id(ctx, runner, endpoint):
    admin = new_admin()
    for round_ in range(IDEMPOTENT_ROUNDS):
        user = new_user()
        fund(user, admin, 10_000)
        key = f"checkout-{round_}"
        if endpoint == "payment":
            def call():
                return wallet.pay(wallet.MakePayment(user, 2_500, "room", None, key, "print-1"))
        else:
            def call():
                return wallet.request_topup(wallet.RequestTopup(user, 2_500, None, key, "print-1"))

        outcomes = race(ctx, [lambda: (lambda r: (r.transaction.id, r.replayed))(call())
                              for _ in range(IDEMPOTENT_RACERS)])

        assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
        assert len({tx_id for tx_id, _ in outcomes}) == 1, "every racer got the same transaction"
        assert sorted(replayed for _, replayed in outcomes) == [False] + [True] * (IDEMPOTENT_RACERS - 1)
        made = [t for t in transactions_of(user) if t.type == endpoint]
        assert len(made) == (1 if endpoint == "payment" else 2)  # the funding top-up is a topup too
        assert balance(user) == (7_500 if endpoint == "payment" else 10_000)
        verify_clean(runner)


def test_a_key_raced_with_two_different_bodies_makes_one_transaction_and_refuses_the_other(ctx, runner):
    admin = new_admin()
    for round_ in range(IDEMPOTENT_ROUNDS):
        user = new_user()
        fund(user, admin, 10_000)
        outcomes = race(ctx, [
            lambda: wallet.pay(wallet.MakePayment(user, 100, None, None, "k", "print-a")).transaction.id,
            lambda: wallet.pay(wallet.MakePayment(user, 200, None, None, "k", "print-b")).transaction.id,
        ])
        assert sorted(type(o).__name__ for o in outcomes) == ["IdempotencyKeyReused", "str"], outcomes
        assert any(isinstance(o, IdempotencyKeyReused) for o in outcomes)
        assert balance(user) in (9_900, 9_800)
        verify_clean(runner)
    assert db.session.execute(select(Posting)).first() is not None


VERIFY_ROUNDS = 30
VERIFY_DEADLINE_SECONDS = 30


def test_ledger_verify_taken_while_payments_commit_reports_no_drift_that_is_not_there(ctx):
    """``ledger verify`` on a live system: its reads must all see the same moment of the book."""
    admin, user = new_admin(), new_user()
    fund(user, admin, 1_000_000)
    stop, paid = threading.Event(), []

    def pay_until_stopped():
        with ctx.app_context():
            try:
                while not stop.is_set():
                    paid.append(wallet.pay(wallet.MakePayment(user, 1)).transaction.id)
            finally:
                db.session.remove()

    payer = threading.Thread(target=pay_until_stopped, name="payer")
    payer.start()
    try:
        while not paid:
            time.sleep(0.01)
        before, reports = len(paid), []
        deadline = time.monotonic() + VERIFY_DEADLINE_SECONDS
        # Rounds, not time, make the test: keep verifying until enough payments committed in between
        # (SQLite's single writer and the GIL can let only a few through in the first 30 rounds).
        while len(reports) < VERIFY_ROUNDS or (len(paid) - before < 10 and time.monotonic() < deadline):
            db.session.rollback()
            reports.append(ledger_store.verify())
        db.session.rollback()
        during = len(paid) - before
    finally:
        stop.set()
        payer.join(30)
    assert during >= 10, "payments were committing while it verified"
    assert [r.drifts for r in reports if not r.clean] == []
    assert_books_clean()


@pytest.mark.parametrize("database_uri", ["postgresql"], indirect=True)  # SQLite writers hold the lock from BEGIN
def test_money_that_arrives_between_a_payments_guard_and_its_balance_read_pays_it_instead_of_a_negative_shortfall(ctx):
    """READ COMMITTED: the guarded debit finds $0.50, a top-up of $1.00 commits, then the read for the 402 sees $1.50.

    The top-up is approved for real on another connection at exactly that moment (a hook on the read's statement).
    """
    admin, user = new_admin(), new_user()
    fund(user, admin, 50)
    arriving = request_topup(user, 100)
    engine, arrived = db.engine, []

    def top_up_lands_first(conn, cursor, statement, parameters, context, executemany):
        if not arrived and statement.lstrip().startswith("SELECT accounts.balance"):
            def approve_elsewhere():
                with ctx.app_context():
                    arrived.append(approve(arriving, admin).transaction.status)
                    db.session.remove()

            lands = threading.Thread(target=approve_elsewhere)
            lands.start()
            lands.join(30)

    event.listen(engine, "before_cursor_execute", top_up_lands_first)
    try:
        result = wallet.pay(wallet.MakePayment(user, 120))
    finally:
        event.remove(engine, "before_cursor_execute", top_up_lands_first)
    assert arrived == ["success"], "the top-up committed between the guard and the read"
    assert result.insufficient is None and result.transaction.status == "success"
    assert balance(user) == 50 + 100 - 120
    assert_books_clean()
