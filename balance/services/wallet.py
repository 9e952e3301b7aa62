"""Top-ups, their approval, and payments: every balance change goes through here.

Each use case is one write transaction: a guarded status change or balance update,
the journal entry, the outbox rows. After commit the new balance goes to the cache
and the outbox rows to the publisher (one Redis round trip for both).

The writes are SQLAlchemy Core statements built once (see ``ledger_store``): every
balance change pays for them, and the ORM's unit of work cost several times the
statements themselves. What a use case returns is a ``TransactionRecord``, the row
as committed, not an ORM object that the commit would expire.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from .. import wire
from ..database import together, write_transaction
from ..domain import events as ev
from ..domain import ledger
from ..domain.errors import AlreadyProcessed, InsufficientFunds, NotFound, OwnTopup
from ..extensions import db
from ..models import Transaction, User, new_id, utcnow
from . import idempotency, outbox, snapshots
from .ledger_store import entry_steps, move_wallet, system_account_id


@dataclass(frozen=True)
class TransactionRecord:
    """A ``transactions`` row as committed (same attribute names as the model, so ``wire.transaction`` takes either)."""

    id: str
    user_id: int
    type: str
    status: str
    amount: int
    description: str | None = None
    reference: str | None = None
    balance_snapshot: int | None = None
    admin_notes: str | None = None
    failure_reason: str | None = None
    processed_by_id: int | None = None
    processed_at: datetime | None = None
    created_at: datetime | None = None


_transactions = Transaction.__table__
_COLUMNS = [_transactions.c[f.name] for f in fields(TransactionRecord)]
_INSERT_TRANSACTION = insert(_transactions)
_TRANSACTION_BY_ID = select(*_COLUMNS).where(_transactions.c.id == bindparam("tid"))
_CLAIM_TOPUP = (
    update(_transactions)
    .where(_transactions.c.id == bindparam("tid"), _transactions.c.type == "topup",
           _transactions.c.status == "pending",
           _transactions.c.user_id != bindparam("admin"))  # four eyes, in the same guard as the race
    .values(status=bindparam("new_status"), processed_at=bindparam("now"), processed_by_id=bindparam("admin"),
            admin_notes=bindparam("notes"), failure_reason=bindparam("reason"))
    .returning(*_COLUMNS)
)
_SET_SNAPSHOT = (update(_transactions).where(_transactions.c.id == bindparam("tid"))
                 .values(balance_snapshot=bindparam("snapshot")))
_USER_EMAIL = select(User.__table__.c.email).where(User.__table__.c.id == bindparam("uid"))


def _record(row) -> TransactionRecord:
    return TransactionRecord(**row._mapping)


def _row(tx: TransactionRecord) -> dict:
    """The record as insert values: a shallow copy (``dataclasses.asdict`` deep-copies, for plain values too)."""
    return dict(vars(tx))


def _write(*steps, note: outbox.Staged) -> list[dict]:
    """Run a change's remaining writes and its commit together (one round trip on PostgreSQL); return its message.

    The last database work of the use case's ``write_transaction``.
    """
    results = together(*steps, note.step, commit=True)
    return note.messages(results[-1])


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

    transaction: TransactionRecord
    replayed: bool = False
    insufficient: dict | None = None
    events: list = field(default_factory=list)
    first_answer: dict | None = None


def _replay(user_id: int, key: str | None, print_: str | None) -> Result | None:
    if not key:
        return None
    found = idempotency.find(user_id, key, print_)
    if found is None:
        return None
    return Result(load(found.transaction_id), replayed=True,
                  insufficient=found.outcome.get("insufficient"), first_answer=found.outcome.get("transaction"))


def _known_id(transaction_id: str, what: str = "transaction") -> str:
    """Transaction ids are UUIDs; anything else (even a NUL byte PostgreSQL would refuse) is simply not found."""
    try:
        return str(uuid.UUID(transaction_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"no such {what}") from None


def load(transaction_id: str) -> TransactionRecord | None:
    row = db.session.connection().execute(_TRANSACTION_BY_ID, {"tid": transaction_id}).one_or_none()
    return None if row is None else _record(row)


def _keyed(cmd, run) -> Result:
    """Run ``run`` once per idempotency key: a stored outcome is returned, a concurrent twin loses the insert.

    A replay also puts the wallet's balance from the database into the cache: the first
    request may have lost its answer after its COMMIT, and with it the cache write (the
    relay would put it right within seconds; the client asking again wants it now).
    """
    done = _replay(cmd.user_id, cmd.idempotency_key, cmd.fingerprint)
    if done:
        snapshots.remember(snapshots.from_database(cmd.user_id))
        return done
    try:
        result, messages, snapshot = run()
    except IntegrityError:
        db.session.rollback()
        done = _replay(cmd.user_id, cmd.idempotency_key, cmd.fingerprint)
        if done:
            return done
        raise
    outbox.hand_off(messages, snapshot)
    return result


def request_topup(cmd: RequestTopup) -> Result:
    """Record a pending top-up; nothing moves until an admin approves it."""

    def run():
        with write_transaction():
            (email,), = together((_USER_EMAIL, {"uid": cmd.user_id}))[0]
            now = utcnow()
            tx = TransactionRecord(new_id(), cmd.user_id, "topup", "pending", cmd.amount, cmd.description,
                                   created_at=now)
            steps = [(_INSERT_TRANSACTION, _row(tx))]
            if cmd.idempotency_key:
                steps.append(idempotency.record_step(cmd.user_id, cmd.idempotency_key, cmd.fingerprint, tx.id,
                                                     {"transaction": wire.transaction(tx)}))
            events = [ev.TransactionCreated(cmd.user_id, tx.id, "topup", cmd.amount, "pending", cmd.description, now),
                      ev.TopupRequested(cmd.user_id, email, tx.id, cmd.amount, cmd.description, now)]
            messages = _write(*steps, note=outbox.stage(events))
        return Result(tx, events=events), messages, None

    return _keyed(cmd, run)


def process_topup(cmd: ProcessTopup) -> Result:
    """Approve (credit once) or reject a pending top-up; ``AlreadyProcessed`` for the loser of a race.

    Four eyes: an admin may not decide a top-up they asked for themselves (``OwnTopup``), neither
    approve it (money out of nothing) nor reject it (a decision is another admin's to make, and
    a plain user cannot withdraw a request either); it stays pending for another admin. The rule
    is part of the claim's ``WHERE``, so it holds whichever entrypoint calls and whatever races it.
    """
    transaction_id = _known_id(cmd.transaction_id, "top-up")
    with write_transaction():
        now = utcnow()
        claimed = together((_CLAIM_TOPUP, {  # the transaction's first statement: it may carry the BEGIN
            "tid": transaction_id, "now": now, "admin": cmd.admin_id, "notes": cmd.admin_notes,
            "new_status": "success" if cmd.approve else "failed",
            "reason": None if cmd.approve else "rejected",
        }))[0]
        if not claimed:
            tx = load(transaction_id)
            if tx is None or tx.type != "topup":
                raise NotFound("no such top-up")
            if tx.status == "pending" and tx.user_id == cmd.admin_id:
                raise OwnTopup("you asked for this top-up yourself: another admin must approve or reject it")
            raise AlreadyProcessed(f"this top-up was already processed ({tx.status})", details={"status": tx.status})
        tx = TransactionRecord(*claimed[0])
        snapshot, steps = None, []
        if cmd.approve:
            applied = move_wallet(tx.user_id, tx.amount, now)
            funding = system_account_id(ledger.TOPUP_FUNDING, applied.currency)
            steps = [*entry_steps(ledger.topup_entry(tx.id, applied.account_id, funding, tx.amount), applied, tx.id,
                                  now),
                     (_SET_SNAPSHOT, {"tid": tx.id, "snapshot": applied.balance_after})]
            tx = replace(tx, balance_snapshot=applied.balance_after)
            events = [
                ev.BalanceChanged(tx.user_id, tx.id, "topup", tx.amount, applied.balance_after - tx.amount,
                                  applied.balance_after, applied.seq, now),
                ev.TransactionCompleted(tx.user_id, tx.id, "topup", tx.amount, applied.balance_after, now),
            ]
            snapshot = snapshots.Snapshot(tx.user_id, applied.balance_after, applied.seq, applied.currency, now)
        else:
            events = [ev.TransactionFailed(tx.user_id, tx.id, "topup", tx.amount, cmd.admin_notes or "rejected", now)]
        events.append(ev.TopupProcessed(tx.user_id, tx.id, tx.status, now))
        messages = _write(*steps, note=outbox.stage(events))
    outbox.hand_off(messages, snapshot)
    return Result(tx, events=events)


def pay(cmd: MakePayment) -> Result:
    """Debit the wallet if it can afford it; otherwise record a failed payment and say by how much it fell short."""
    ledger.require_positive(cmd.amount)

    def run():
        with write_transaction():
            now = utcnow()
            tx_id = new_id()
            snapshot, insufficient = None, None
            try:
                applied = move_wallet(cmd.user_id, -cmd.amount, now)
            except InsufficientFunds as short:
                insufficient = short.details
                tx = TransactionRecord(tx_id, cmd.user_id, "payment", "failed", cmd.amount, cmd.description,
                                       cmd.reference, failure_reason="insufficient_balance", processed_at=now,
                                       created_at=now)
                steps = [(_INSERT_TRANSACTION, _row(tx))]
                events = [
                    ev.TransactionFailed(cmd.user_id, tx.id, "payment", cmd.amount, "insufficient_balance", now),
                    ev.BalanceInsufficient(cmd.user_id, tx.id, cmd.amount, short.details["current"], now),
                ]
            else:
                tx = TransactionRecord(tx_id, cmd.user_id, "payment", "success", cmd.amount, cmd.description,
                                       cmd.reference, balance_snapshot=applied.balance_after, processed_at=now,
                                       created_at=now)
                revenue = system_account_id(ledger.PAYMENT_REVENUE, applied.currency)
                steps = [(_INSERT_TRANSACTION, _row(tx)),
                         *entry_steps(ledger.payment_entry(tx.id, applied.account_id, revenue, cmd.amount), applied,
                                      tx.id, now)]
                events = [
                    ev.BalanceChanged(cmd.user_id, tx.id, "payment", cmd.amount, applied.balance_after + cmd.amount,
                                      applied.balance_after, applied.seq, now),
                    ev.TransactionCompleted(cmd.user_id, tx.id, "payment", cmd.amount, applied.balance_after, now),
                ]
                snapshot = snapshots.Snapshot(cmd.user_id, applied.balance_after, applied.seq, applied.currency, now)
            if cmd.idempotency_key:
                outcome = {"transaction": wire.transaction(tx), "insufficient": insufficient}
                steps.append(idempotency.record_step(cmd.user_id, cmd.idempotency_key, cmd.fingerprint, tx.id, outcome))
            messages = _write(*steps, note=outbox.stage(events))
        return Result(tx, insufficient=insufficient, events=events), messages, snapshot

    return _keyed(cmd, run)


def get_transaction(user_id: int, transaction_id: str) -> Transaction:
    tx = db.session.get(Transaction, _known_id(transaction_id))
    if tx is None or tx.user_id != user_id:
        raise NotFound("no such transaction")
    return tx
