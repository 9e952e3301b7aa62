"""What the admin pages read: the queues with the people involved, users with balances, one user's history.

Rows come with their requester and decider loaded in the same round trip, so a page
of twenty decisions is a couple of queries, not forty-one.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import selectinload

from ..domain.errors import NotFound
from ..extensions import db
from ..models import DECIDED_TOPUP, PENDING_TOPUP, Account, Transaction, User
from . import accounts, history, snapshots

_PEOPLE = (selectinload(Transaction.user), selectinload(Transaction.processed_by))


@dataclass(frozen=True)
class Decision:
    status: str
    admin_id: int | None
    admin_email: str | None
    at: datetime | None


@dataclass(frozen=True)
class UserBalance:
    user: User
    balance: int
    seq: int
    updated_at: datetime | None


@dataclass(frozen=True)
class UserHistory:
    user: User
    snapshot: snapshots.Snapshot
    transactions: history.Page


def _id(transaction_id: str) -> str | None:
    """Transaction ids are UUIDs; anything else (a NUL PostgreSQL would refuse, say) names nothing."""
    try:
        return str(uuid.UUID(transaction_id))
    except (ValueError, TypeError, AttributeError):
        return None


def pending() -> list[Transaction]:
    """The queue, oldest first, each with who asked."""
    return db.session.execute(
        select(Transaction).options(*_PEOPLE)
        .where(text(PENDING_TOPUP))
        .order_by(Transaction.created_at, Transaction.id)
    ).scalars().all()


def topup(transaction_id: str) -> Transaction:
    """One top-up with its requester (for the confirmation page)."""
    known = _id(transaction_id)
    tx = known and db.session.execute(
        select(Transaction).options(*_PEOPLE).where(Transaction.id == known, Transaction.type == "topup")
    ).scalar_one_or_none()
    if tx is None:
        raise NotFound("no such top-up")
    return tx


def processed(limit: int, cursor: str | None) -> history.Page:
    """Decided top-ups, newest first, each with who asked and who decided."""
    query = select(Transaction).options(*_PEOPLE).where(text(DECIDED_TOPUP))
    return history.newest_first(query, limit, cursor)


def decision(transaction_id: str) -> Decision | None:
    """How a top-up was decided, to tell the admin who lost a race who won it."""
    known = _id(transaction_id)
    tx = known and db.session.execute(
        select(Transaction).options(*_PEOPLE).where(Transaction.id == known)
    ).scalar_one_or_none()
    if tx is None:
        return None
    decider = tx.processed_by
    return Decision(tx.status, decider.id if decider else None, decider.email if decider else None, tx.processed_at)


def users(limit: int, after: str | None) -> history.UsersPage:
    """A page of users with a wallet, by email, each with the wallet's balance and change counter."""
    page = history.users_with_balances(limit, after)
    return history.UsersPage([UserBalance(u, a.balance, a.seq, a.updated_at) for u, a in page.items],
                             page.next_after)


def balances(user_ids: list[int]) -> list[dict]:
    """Just the numbers of the users a page shows, for it to refresh itself:
    ``[{user_id, balance (minor), seq, updated_at}]``."""
    return [{"user_id": r.user_id, "balance": r.balance, "seq": r.seq, "updated_at": r.updated_at}
            for r in history.wallet_numbers(user_ids)]


def user_history(user_id: int, limit: int, cursor: str | None) -> UserHistory:
    user = accounts.get(user_id)
    return UserHistory(user, snapshots.from_database(user_id), history.transactions_of(user_id, limit, cursor))
