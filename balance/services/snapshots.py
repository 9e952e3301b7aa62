"""The current balance of a wallet: from the cache when it has it, else from the database.

The cache (``balance.realtime.cache``) is optional and only ever moves forward in
``seq``; the database is the truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import Account


@dataclass(frozen=True)
class Snapshot:
    user_id: int
    balance: int
    seq: int
    currency: str
    updated_at: datetime | None


def _cache():
    return current_app.extensions.get("balance.cache")


def from_database(user_id: int) -> Snapshot:
    row = db.session.execute(
        select(Account.balance, Account.seq, Account.currency, Account.updated_at).where(Account.user_id == user_id)
    ).one()
    return Snapshot(user_id, row.balance, row.seq, row.currency, row.updated_at)


def current(user_id: int) -> Snapshot:
    cache = _cache()
    if cache is not None:
        hit = cache.get(user_id)
        if hit is not None:
            return hit
    snap = from_database(user_id)
    if cache is not None:
        cache.put(snap)
    return snap


def remember(snapshot: Snapshot) -> None:
    """After commit: write the new balance to the cache (which ignores it if it already has a newer seq)."""
    cache = _cache()
    if cache is not None:
        cache.put(snapshot)
