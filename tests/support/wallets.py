"""Service-level helpers for integration tests: people and money, without going through HTTP.

Call them inside an app context. They return plain ids and values (or a service's result),
and end whatever read transaction the service left open on the session: after commit the
publisher reads the outbox rows back and marks them published on another connection, so
on SQLite the session would otherwise hold a stale snapshot that cannot take a write lock.
"""
from __future__ import annotations

import itertools

from sqlalchemy import func, select

from balance.extensions import db
from balance.models import Account, Posting, Transaction
from balance.services import accounts, ledger_store, wallet

_counter = itertools.count(1)


def _settled(value):
    db.session.rollback()
    return value


def new_user(email: str | None = None, password: str = "password123") -> int:
    return _settled(accounts.register(email or f"person{next(_counter)}@example.com", password).id)


def new_admin(email: str | None = None, password: str = "admin-password-1") -> int:
    user, _ = accounts.make_admin(email or f"boss{next(_counter)}@example.com", password)
    return _settled(user.id)


def request_topup(user_id: int, minor: int, key: str | None = None) -> str:
    print_ = f"topup:{minor}" if key else None
    return _settled(wallet.request_topup(wallet.RequestTopup(user_id, minor, None, key, print_)).transaction.id)


def approve(transaction_id: str, admin_id: int) -> wallet.Result:
    return _settled(wallet.process_topup(wallet.ProcessTopup(transaction_id, admin_id, True, "ok")))


def fund(user_id: int, admin_id: int, minor: int) -> str:
    """Request and approve a top-up; return its transaction id."""
    tx_id = request_topup(user_id, minor)
    approve(tx_id, admin_id)
    return tx_id


def pay(user_id: int, minor: int, key: str | None = None, description: str | None = None) -> wallet.Result:
    print_ = f"payment:{minor}:{description}" if key else None
    return _settled(wallet.pay(wallet.MakePayment(user_id, minor, description, None, key, print_)))


def wallet_row(user_id: int) -> Account:
    db.session.rollback()
    return db.session.execute(select(Account).where(Account.user_id == user_id)).scalar_one()


def balance(user_id: int) -> int:
    return wallet_row(user_id).balance


def posted_sum(account_id: int) -> int:
    return int(db.session.execute(select(func.coalesce(func.sum(Posting.amount), 0))
                                  .where(Posting.account_id == account_id)).scalar_one())


def postings_of(account_id: int) -> list[Posting]:
    return db.session.execute(select(Posting).where(Posting.account_id == account_id)
                              .order_by(Posting.account_seq)).scalars().all()


def transactions_of(user_id: int) -> list[Transaction]:
    db.session.rollback()
    return db.session.execute(select(Transaction).where(Transaction.user_id == user_id)).scalars().all()


def assert_books_clean() -> ledger_store.VerifyReport:
    db.session.rollback()
    report = ledger_store.verify()
    assert report.clean, report
    return report
