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
from ..models import PENDING_TOPUP, Account, Transaction, User

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
        .where(text(PENDING_TOPUP))
        .order_by(Transaction.created_at, Transaction.id)
    ).scalars().all()


@dataclass(frozen=True)
class UsersPage:
    """Users by email, from just after ``after``; ``next_after`` is where the next page starts (None: this is the last)."""

    items: list
    next_after: str | None


def after_email(raw: str | None) -> str | None:
    """Where a users page starts: just after this email (the one the previous page ended on)."""
    if raw is None or raw == "":
        return None
    if len(raw) > 254 or not raw.isprintable():  # longer than any stored email; NUL, which PostgreSQL refuses
        raise ValidationFailed("after must be an email from the previous page", fields={"after": "not a page position"})
    return raw


def user_ids(raw: str | None) -> list[int]:
    """The users a page shows, as ``ids=3,5,9``: whole numbers, at most a page's worth."""
    parts = (raw or "").split(",")
    if not raw or len(parts) > MAX_PAGE or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts):
        raise ValidationFailed(f"ids must be up to {MAX_PAGE} user ids separated by commas",
                               fields={"ids": "the users shown"})
    return [int(p) for p in parts]


def users_with_balances(limit: int, after: str | None) -> UsersPage:
    """A page of users with their wallets, by email (keyset on the unique index: a page costs the same however many
    users there are)."""
    query = select(User, Account).join(Account, Account.user_id == User.id).where(Account.kind == "wallet")
    if after is not None:
        query = query.where(User.email > after)
    rows = db.session.execute(query.order_by(User.email).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return UsersPage(rows, rows[-1][0].email if more and rows else None)


def wallet_numbers(user_ids: list[int]) -> list:
    """These users' wallets, only the numbers that change (for a page refreshing the rows it shows)."""
    return db.session.execute(
        select(Account.user_id, Account.balance, Account.seq, Account.updated_at)
        .where(Account.kind == "wallet", Account.user_id.in_(user_ids))
    ).all()


def newest_first(query, limit: int, cursor: str | None) -> Page:
    """Keyset paging, newest first, for a read module's own transaction query (its filters, its eager loads)."""
    return _newest_first(query, limit, cursor)
