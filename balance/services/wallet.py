"""Top-ups, their approval, and payments: every balance change goes through here.

Each use case is one write transaction: a guarded status change or balance update,
the journal entry, the outbox rows. After commit the new balance goes to the cache
and the outbox rows to the publisher.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from .. import wire
from ..database import write_transaction
from ..domain import events as ev
from ..domain import ledger
from ..domain.errors import AlreadyProcessed, InsufficientFunds, NotFound
from ..extensions import db
from ..models import Transaction, User, utcnow
from . import idempotency, outbox, snapshots
from .ledger_store import post, system_account_id, wallet_of


@dataclass(frozen=True)
class RequestTopup:
    user_id: int
    amount: int
    description: str | None = None
    idempotency_key: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class ProcessTopup:
    transaction_id: str
    admin_id: int
    approve: bool
    admin_notes: str | None = None


@dataclass(frozen=True)
class MakePayment:
    user_id: int
    amount: int
    description: str | None = None
    reference: str | None = None
    idempotency_key: str | None = None
    fingerprint: str | None = None


@dataclass
class Result:
    """What a use case did: the transaction, whether this was a replay, and the shortfall if it was refused.

    A replay also carries ``first_answer``: the transaction as the first request was
    answered (wire form), since a top-up may have been decided since then.
    """

    transaction: Transaction
    replayed: bool = False
    insufficient: dict | None = None
    events: list = field(default_factory=list)
    first_answer: dict | None = None


def _currency() -> str:
    return current_app.config["CURRENCY"]


def _replay(user_id: int, key: str | None, print_: str | None) -> Result | None:
    if not key:
        return None
    found = idempotency.find(user_id, key, print_)
    if found is None:
        return None
    return Result(db.session.get(Transaction, found.transaction_id), replayed=True,
                  insufficient=found.outcome.get("insufficient"), first_answer=found.outcome.get("transaction"))


def _known_id(transaction_id: str, what: str = "transaction") -> str:
    """Transaction ids are UUIDs; anything else (even a NUL byte PostgreSQL would refuse) is simply not found."""
    try:
        return str(uuid.UUID(transaction_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"no such {what}") from None


def _keyed(cmd, run) -> Result:
    """Run ``run`` once per idempotency key: a stored outcome is returned, a concurrent twin loses the insert."""
    done = _replay(cmd.user_id, cmd.idempotency_key, cmd.fingerprint)
    if done:
        return done
    try:
        result, rows, snapshot = run()
    except IntegrityError:
        db.session.rollback()
        done = _replay(cmd.user_id, cmd.idempotency_key, cmd.fingerprint)
        if done:
            return done
        raise
    _after_commit(rows, snapshot)
    return result


def _after_commit(rows, snapshot) -> None:
    if snapshot is not None:
        snapshots.remember(snapshot)
    outbox.hand_off(rows)


def request_topup(cmd: RequestTopup) -> Result:
    """Record a pending top-up; nothing moves until an admin approves it."""

    def run():
        with write_transaction() as session:
            user = session.get(User, cmd.user_id)
            now = utcnow()
            tx = Transaction(user_id=cmd.user_id, type="topup", status="pending", amount=cmd.amount,
                             description=cmd.description, created_at=now)
            session.add(tx)
            session.flush()
            if cmd.idempotency_key:
                idempotency.record(cmd.user_id, cmd.idempotency_key, cmd.fingerprint, tx.id,
                                   {"transaction": wire.transaction(tx)})
            events = [ev.TopupRequested(cmd.user_id, user.email, tx.id, cmd.amount, cmd.description, now)]
            rows = outbox.stage(events)
        return Result(tx, events=events), rows, None

    return _keyed(cmd, run)


def process_topup(cmd: ProcessTopup) -> Result:
    """Approve (credit once) or reject a pending top-up; ``AlreadyProcessed`` for the loser of a race."""
    transaction_id = _known_id(cmd.transaction_id, "top-up")
    with write_transaction() as session:
        now = utcnow()
        claimed = session.execute(
            update(Transaction)
            .where(Transaction.id == transaction_id, Transaction.type == "topup", Transaction.status == "pending")
            .values(
                status="success" if cmd.approve else "failed",
                processed_at=now,
                processed_by_id=cmd.admin_id,
                admin_notes=cmd.admin_notes,
                failure_reason=None if cmd.approve else "rejected",
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        tx = session.get(Transaction, transaction_id, populate_existing=True)
        if not claimed:
            if tx is None or tx.type != "topup":
                raise NotFound("no such top-up")
            raise AlreadyProcessed(f"this top-up was already processed ({tx.status})", details={"status": tx.status})
        snapshot = None
        if cmd.approve:
            wallet = wallet_of(tx.user_id)
            funding = system_account_id(ledger.TOPUP_FUNDING, wallet.currency)
            applied = post(ledger.topup_entry(tx.id, wallet.id, funding, tx.amount), tx.id)[wallet.id]
            tx.balance_snapshot = applied.balance_after
            events = [
                ev.BalanceChanged(tx.user_id, tx.id, "topup", tx.amount, applied.balance_after - tx.amount,
                                  applied.balance_after, applied.seq, now),
                ev.TransactionCompleted(tx.user_id, tx.id, "topup", tx.amount, applied.balance_after, now),
            ]
            snapshot = snapshots.Snapshot(tx.user_id, applied.balance_after, applied.seq, wallet.currency, now)
        else:
            events = [ev.TransactionFailed(tx.user_id, tx.id, "topup", tx.amount, cmd.admin_notes or "rejected", now)]
        events.append(ev.TopupProcessed(tx.user_id, tx.id, tx.status, now))
        rows = outbox.stage(events)
    _after_commit(rows, snapshot)
    return Result(tx, events=events)


def pay(cmd: MakePayment) -> Result:
    """Debit the wallet if it can afford it; otherwise record a failed payment and say by how much it fell short."""

    def run():
        with write_transaction() as session:
            now = utcnow()
            wallet = wallet_of(cmd.user_id)
            tx = Transaction(user_id=cmd.user_id, type="payment", status="pending", amount=cmd.amount,
                             description=cmd.description, reference=cmd.reference, created_at=now)
            session.add(tx)
            session.flush()
            revenue = system_account_id(ledger.PAYMENT_REVENUE, wallet.currency)
            snapshot, insufficient = None, None
            try:
                applied = post(ledger.payment_entry(tx.id, wallet.id, revenue, cmd.amount), tx.id)[wallet.id]
            except InsufficientFunds as short:
                insufficient = short.details
                tx.status, tx.failure_reason, tx.processed_at = "failed", "insufficient_balance", now
                events = [
                    ev.TransactionFailed(cmd.user_id, tx.id, "payment", cmd.amount, "insufficient_balance", now),
                    ev.BalanceInsufficient(cmd.user_id, tx.id, cmd.amount, short.details["current"], now),
                ]
            else:
                tx.status, tx.processed_at, tx.balance_snapshot = "success", now, applied.balance_after
                events = [
                    ev.BalanceChanged(cmd.user_id, tx.id, "payment", cmd.amount, applied.balance_after + cmd.amount,
                                      applied.balance_after, applied.seq, now),
                    ev.TransactionCompleted(cmd.user_id, tx.id, "payment", cmd.amount, applied.balance_after, now),
                ]
                snapshot = snapshots.Snapshot(cmd.user_id, applied.balance_after, applied.seq, wallet.currency, now)
            if cmd.idempotency_key:
                outcome = {"transaction": wire.transaction(tx), "insufficient": insufficient}
                idempotency.record(cmd.user_id, cmd.idempotency_key, cmd.fingerprint, tx.id, outcome)
            rows = outbox.stage(events)
        return Result(tx, insufficient=insufficient, events=events), rows, snapshot

    return _keyed(cmd, run)


def get_transaction(user_id: int, transaction_id: str) -> Transaction:
    tx = db.session.get(Transaction, _known_id(transaction_id))
    if tx is None or tx.user_id != user_id:
        raise NotFound("no such transaction")
    return tx
