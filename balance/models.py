"""Tables. The ledger is append-only; the database enforces what it can.

- ``accounts.balance`` of a wallet is a cache of the sum of its postings, kept in the
  same transaction, and may never go below zero (CHECK). House (system) accounts keep
  no cache (CHECK): their balance is their postings' sum, so no change waits on them.
- ``accounts.seq`` counts the changes of an account; each posting records the seq
  and balance it produced, so the history of ``balance_updated`` events can be
  replayed from the ledger itself (unique per account).
- ``journal_entries.reference`` is unique, so a top-up is credited at most once.
- ``idempotency_keys`` are unique per user.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

BigId = BigInteger().with_variant(Integer, "sqlite")
# The two partial indexes' predicates; queries say exactly these (text, not bound values), so PostgreSQL can
# always tell its index covers them, whatever plan it caches.
PENDING_TOPUP = "type = 'topup' AND status = 'pending'"
DECIDED_TOPUP = "type = 'topup' AND status <> 'pending'"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(db.TypeDecorator):
    """Timezone-aware UTC datetimes on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint("role IN ('user', 'admin')", name="role_known"),)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Account(db.Model):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User | None] = relationship()

    __table_args__ = (
        CheckConstraint("kind IN ('wallet', 'system')", name="kind_known"),
        CheckConstraint("kind <> 'wallet' OR balance >= 0", name="wallet_not_negative"),
        CheckConstraint("(kind = 'wallet') = (user_id IS NOT NULL)", name="wallet_has_owner"),
        CheckConstraint("kind = 'wallet' OR (balance = 0 AND seq = 0)", name="house_keeps_no_cache"),
        CheckConstraint("seq >= 0", name="seq_not_negative"),
    )


class JournalEntry(db.Model):
    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    transaction_id: Mapped[str | None] = mapped_column(ForeignKey("transactions.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    postings: Mapped[list[Posting]] = relationship(back_populates="entry")


class Posting(db.Model):
    __tablename__ = "postings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int | None] = mapped_column(BigInteger)
    account_seq: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    entry: Mapped[JournalEntry] = relationship(back_populates="postings")

    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        CheckConstraint("(balance_after IS NULL) = (account_seq IS NULL)", name="seq_with_balance"),
        UniqueConstraint("account_id", "account_seq", name="uq_postings_account_seq"),
        Index("ix_postings_entry_id", "entry_id"),  # an entry's legs: PostgreSQL's balance check at every commit
    )


class Transaction(db.Model):
    """What a user asked for (a top-up, a payment) and how it ended."""

    __tablename__ = "transactions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))  # indexed first in ix_transactions_user_order
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(String(500))
    reference: Mapped[str | None] = mapped_column(String(100))
    balance_snapshot: Mapped[int | None] = mapped_column(BigInteger)
    admin_notes: Mapped[str | None] = mapped_column(String(500))
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    processed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    processed_by: Mapped[User | None] = relationship(foreign_keys=[processed_by_id])

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("type IN ('topup', 'payment')", name="type_known"),
        CheckConstraint("status IN ('pending', 'success', 'failed')", name="status_known"),
        CheckConstraint("status = 'pending' OR processed_at IS NOT NULL", name="processed_has_time"),
        Index("ix_transactions_user_order", "user_id", "created_at", "id"),
        # the admins' queue (pending top-ups, oldest first): only pending rows, so as small as the queue
        Index("ix_transactions_pending_topups", "created_at", "id",
              postgresql_where=text(PENDING_TOPUP), sqlite_where=text(PENDING_TOPUP)),
        # the admins' decided top-ups, newest first: every page otherwise scanned and sorted all transactions
        Index("ix_transactions_decided_topups", "created_at", "id",
              postgresql_where=text(DECIDED_TOPUP), sqlite_where=text(DECIDED_TOPUP)),
    )


class IdempotencyKey(db.Model):
    """The first answer to a money-moving request, so a retry gets the same one and moves nothing."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    transaction_id: Mapped[str] = mapped_column(ForeignKey("transactions.id"))
    outcome: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),
        Index("ix_idempotency_keys_created_at", "created_at", "id"),  # pruning, oldest first
    )


class OutboxEvent(db.Model):
    """A committed change's events, waiting to be (or already) published to ``balance:updates``."""

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    audience: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("audience IN ('user', 'admins')", name="audience_known"),
        Index("ix_outbox_unpublished", "published_at", "id"),
        Index("ix_outbox_created_at", "created_at"),  # a worker's catch-up after a lost subscription reads by time
    )
