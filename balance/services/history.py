"""Read-side queries: a user's transactions, the admins' queues, the users list.

Pagination is by keyset (``created_at``, ``id``), newest first, so a page never
repeats or skips a row when new transactions arrive between two requests.
"""
from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select, text, tuple_
from sqlalchemy.orm import selectinload

from ..domain.errors import ValidationFailed
from ..extensions import db
from ..models import DECIDED_TOPUP, Account, Transaction, User

MAX_PAGE = 100


@dataclass(frozen=True)
class Page:
    items: list
    next_cursor: str | None


def encode_cursor(tx: Transaction) -> str:
    raw = json.dumps([tx.created_at.isoformat(), tx.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; anything this API did not write (a naive time, an id that is not one) is a 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, tx_id = json.loads(raw)
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError("a cursor's time has a zone")
        return at.astimezone(timezone.utc), str(uuid.UUID(tx_id))
    except (ValueError, TypeError, AttributeError, OverflowError):
        raise ValidationFailed("cursor is not valid", fields={"cursor": "not a cursor from this API"}) from None


def page_size(raw: str | None, default: int = 20) -> int:
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
        raise ValidationFailed(f"limit must be a whole number from 1 to {MAX_PAGE}",
                               fields={"limit": f"1 to {MAX_PAGE}"})
    return int(raw)


def _newest_first(query, limit: int, cursor: str | None) -> Page:
    if cursor:
        at, tx_id = decode_cursor(cursor)
        # a row comparison, not (a < x OR (a = x AND b < y)): the database can start the index scan at the cursor
        # instead of walking every row newer than it (a page 20,000 rows deep: 0.1 ms instead of 26)
        query = query.where(tuple_(Transaction.created_at, Transaction.id) < tuple_(at, tx_id))
    rows = db.session.execute(
        query.order_by(Transaction.created_at.desc(), Transaction.id.desc()).limit(limit + 1)
    ).scalars().all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1]) if more and rows else None)


def transactions_of(user_id: int, limit: int, cursor: str | None) -> Page:
    return _newest_first(select(Transaction).where(Transaction.user_id == user_id), limit, cursor)


def pending_topups() -> list[Transaction]:
    """Oldest first: the queue an admin works through, each with who asked (loaded together, not one by one)."""
    return db.session.execute(
        select(Transaction)
        .options(selectinload(Transaction.user))
        .where(Transaction.type == "topup", Transaction.status == "pending")
        .order_by(Transaction.created_at, Transaction.id)
    ).scalars().all()


def processed_topups(limit: int, cursor: str | None) -> Page:
    return _newest_first(select(Transaction).where(text(DECIDED_TOPUP)), limit, cursor)


@dataclass(frozen=True)
class UsersPage:
    """Users by email, from just after ``after``; ``next_after`` is where the next page starts (None: this is the last)."""

    items: list
    next_after: str | None


def after_email(raw: str | None) -> str | None:
    """Where a users page starts: just after this email (the one the previous page ended on)."""
    if raw is None or raw == "":
        return None
    if len(raw) > 254:  # longer than any stored email
        raise ValidationFailed("after must be an email from the previous page", fields={"after": "not a page position"})
    return raw


def _by_email(columns, limit: int, after: str | None) -> UsersPage:
    """Keyset paging by email (unique and indexed), so a page costs the same however many users there are."""
    query = select(*columns).join(Account, Account.user_id == User.id).where(Account.kind == "wallet")
    if after is not None:
        query = query.where(User.email > after)
    rows = db.session.execute(query.order_by(User.email).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return UsersPage(rows, rows[-1].email if more and rows else None)


def users_with_balances(limit: int, after: str | None) -> UsersPage:
    """A page of users, each with their wallet."""
    return _by_email((User, Account, User.email), limit, after)


def wallet_numbers(limit: int, after: str | None) -> UsersPage:
    """The same page as ``users_with_balances``, only the numbers that change (for a page that refreshes itself)."""
    return _by_email((Account.user_id, Account.balance, Account.seq, Account.updated_at, User.email), limit, after)


def newest_first(query, limit: int, cursor: str | None) -> Page:
    """Keyset paging, newest first, for a read module's own transaction query (its filters, its eager loads)."""
    return _newest_first(query, limit, cursor)
