"""The one place where domain values become the seed's JSON shapes.

Used by the HTTP API, the outbox (whose payloads are the socket events) and the
idempotency store. It depends only on the domain and the models.
"""
from __future__ import annotations

from datetime import datetime, timezone

from .domain import events as ev
from .domain.money import to_wire


def timestamp(at: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a ``Z``, as JavaScript's ``Date.toISOString`` writes it."""
    if at is None:
        return None
    at = at.astimezone(timezone.utc)  # PostgreSQL hands back timestamptz in the session's zone
    return at.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"  # (strftime: slower, several per change)


def user(u) -> dict:
    return {"id": u.id, "email": u.email, "name": u.name, "role": u.role}


def transaction(tx) -> dict:
    return {
        "id": tx.id,
        "type": tx.type,
        "status": tx.status,
        "amount": to_wire(tx.amount),
        "description": tx.description,
        "reference": tx.reference,
        "balance_snapshot": to_wire(tx.balance_snapshot),
        "created_at": timestamp(tx.created_at),
        "processed_at": timestamp(tx.processed_at),
        "admin_notes": tx.admin_notes,
        "failure_reason": tx.failure_reason,
    }


def insufficient_details(required: int, current: int) -> dict:
    return {
        "required_amount": to_wire(required),
        "current_balance": to_wire(current),
        "shortfall": to_wire(required - current),
    }


def event(e) -> tuple[str, dict]:
    """A domain event as a socket event name and payload (the seed's ``useBalance`` field names)."""
    if isinstance(e, ev.BalanceChanged):
        return "balance_updated", {
            "newBalance": to_wire(e.new_balance),
            "previousBalance": to_wire(e.previous_balance),
            "transactionId": e.transaction_id,
            "transactionType": e.transaction_type,
            "amount": to_wire(e.amount),
            "timestamp": timestamp(e.at),
            "seq": e.seq,
        }
    if isinstance(e, ev.TransactionCompleted):
        return "transaction_completed", {
            "transactionId": e.transaction_id,
            "transactionType": e.transaction_type,
            "amount": to_wire(e.amount),
            "status": "success",
            "newBalance": to_wire(e.new_balance),
            "timestamp": timestamp(e.at),
        }
    if isinstance(e, ev.TransactionFailed):
        return "transaction_failed", {
            "transactionId": e.transaction_id,
            "transactionType": e.transaction_type,
            "amount": to_wire(e.amount),
            "reason": e.reason,
            "timestamp": timestamp(e.at),
        }
    if isinstance(e, ev.BalanceInsufficient):
        return "balance_insufficient", {
            "transactionId": e.transaction_id,
            "requiredAmount": to_wire(e.required),
            "currentBalance": to_wire(e.current),
            "shortfall": to_wire(e.required - e.current),
            "timestamp": timestamp(e.at),
        }
    if isinstance(e, ev.TransactionCreated):
        return "transaction_created", {
            "transactionId": e.transaction_id,
            "transactionType": e.transaction_type,
            "amount": to_wire(e.amount),
            "status": e.status,
            "description": e.description,
            "timestamp": timestamp(e.at),
        }
    if isinstance(e, ev.TopupRequested):
        return "topup_requested", {
            "transactionId": e.transaction_id,
            "userId": e.user_id,
            "userEmail": e.user_email,
            "amount": to_wire(e.amount),
            "description": e.description,
            "timestamp": timestamp(e.at),
        }
    if isinstance(e, ev.TopupProcessed):
        return "topup_processed", {
            "transactionId": e.transaction_id,
            "userId": e.user_id,
            "status": e.status,
            "timestamp": timestamp(e.at),
        }
    raise TypeError(f"not an event: {e!r}")
