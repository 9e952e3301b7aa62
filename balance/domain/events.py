"""Things that happened to a balance, in the past tense.

Services return these after their transaction commits; the outbox stores them and
the publisher fans them out. Amounts are minor units; ``balance.wire`` turns them
into the seed's JSON payloads.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class BalanceChanged:
    user_id: int
    transaction_id: str
    transaction_type: str
    amount: int
    previous_balance: int
    new_balance: int
    seq: int
    at: datetime


@dataclass(frozen=True)
class TransactionCompleted:
    user_id: int
    transaction_id: str
    transaction_type: str
    amount: int
    new_balance: int
    at: datetime


@dataclass(frozen=True)
class TransactionFailed:
    user_id: int
    transaction_id: str
    transaction_type: str
    amount: int
    reason: str
    at: datetime


@dataclass(frozen=True)
class BalanceInsufficient:
    user_id: int
    transaction_id: str
    required: int
    current: int
    at: datetime


@dataclass(frozen=True)
class TransactionCreated:
    """For the user's other tabs: a transaction of theirs now exists (a top-up request awaiting an admin)."""

    user_id: int
    transaction_id: str
    transaction_type: str
    amount: int
    status: str
    description: str | None
    at: datetime


@dataclass(frozen=True)
class TopupRequested:
    """For the admins' live pending list."""

    user_id: int
    user_email: str
    transaction_id: str
    amount: int
    description: str | None
    at: datetime


@dataclass(frozen=True)
class TopupProcessed:
    """For the admins' lists: another admin has decided this one."""

    user_id: int
    transaction_id: str
    status: str
    at: datetime
