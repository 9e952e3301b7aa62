"""Idempotency keys: the first outcome of a keyed request is kept, so a retry gets it again.

The key row is inserted in the same transaction as the money movement, and the key
is unique per user, so of two concurrent requests with one key only one can commit;
the other sees the stored outcome. A key is kept for ``IDEMPOTENCY_RETENTION_HOURS``
(``prune_older_than``): a retry after that is a new request.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert, select

from ..database import delete_batch
from ..domain.errors import IdempotencyKeyReused, ValidationFailed
from ..extensions import db
from ..models import IdempotencyKey, utcnow

MAX_KEY_LENGTH = 255
PRUNE_BATCH = 1000
_INSERT = insert(IdempotencyKey.__table__)


@dataclass(frozen=True)
class Replay:
    transaction_id: str
    outcome: dict


def fingerprint(endpoint: str, body: dict) -> str:
    canonical = json.dumps({"endpoint": endpoint, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str | None) -> str | None:
    """The key, stripped; printable ASCII only.

    A header's bytes reach the app decoded as Latin-1 (WSGI), so a non-ASCII key is
    whatever that decoding makes of the client's encoding: ``café`` sent as UTF-8 was
    taken as ``cafÃ©`` and ``日本`` refused as control characters. ASCII means the same
    key whatever the client, the proxy or the server in between.
    """
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
            fields={"Idempotency-Key": "1 to 255 printable ASCII characters"},
        )
    return key


def find(user_id: int, key: str, print_: str) -> Replay | None:
    """The stored outcome for this key, or None; refuses a key reused for a different request."""
    row = db.session.execute(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.fingerprint != print_:
        raise IdempotencyKeyReused("this Idempotency-Key was already used for a different request")
    return Replay(row.transaction_id, json.loads(row.outcome))


def record_step(user_id: int, key: str, print_: str, transaction_id: str, outcome: dict):
    """The statement storing the outcome, for the caller's transaction (``database.together``).

    A twin request with this key fails there, on the unique key, and then finds this
    outcome once the first one commits.
    """
    return (_INSERT, {"user_id": user_id, "key": key, "fingerprint": print_, "transaction_id": transaction_id,
                      "outcome": json.dumps(outcome), "created_at": utcnow()})


def prune_older_than(older_than: timedelta, batch: int = PRUNE_BATCH) -> int:
    """Delete one batch of keys stored more than ``older_than`` ago, oldest first; return how many went.

    Their transactions and the ledger stay: only the memory of the first answer goes, so a
    retry with such a key is taken as a new request. By ``ix_idempotency_keys_created_at``;
    several workers pruning at once delete each key once.
    """
    cutoff = utcnow() - older_than
    oldest = (select(IdempotencyKey.id).where(IdempotencyKey.created_at < cutoff)
              .order_by(IdempotencyKey.created_at, IdempotencyKey.id).limit(batch))
    return delete_batch(IdempotencyKey, oldest)
